using Diffusion.Evaluation;
using Diffusion.Evaluation.Benchmark;
using Diffusion.ReferenceModels;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Tests;

/// <summary>The quality metric with the shipped classifier on the real Fashion-MNIST files.</summary>
public class EvaluationTests
{
    private const string Train = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    private const string Test = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

    /// <summary>A closed-form model of Fashion-MNIST's shape with 10 classes (each its own mean).</summary>
    private static DiffusionModel ConditionalModel() => Fixtures.Load(Fixtures.Spec() with
    {
        Height = 28, Width = 28,
        ClassMeans = Enumerable.Range(0, 11).Select(c => new[] { c / 10f - 0.5f }).ToArray(),
        Config = new DiffusionConfig { NumClasses = 10 },
    });

    [Fact]
    public void Test_set_is_close_to_train_set_and_far_from_noise()
    {
        using var classifier = new FeatureClassifier(Fixtures.Classifier, new SessionSettings());
        var (test, n) = Evaluator.LoadReference(Test, 2000, 784);
        var (train, m) = Evaluator.LoadReference(Train, 2000, 784);
        var noise = new float[2000 * 784];
        new Noise.NoiseGenerator(1).Fill(noise, 0, 784, 0);
        for (int i = 0; i < noise.Length; i++) noise[i] = Math.Clamp(noise[i] * 0.5f, -1, 1);
        var fTest = classifier.Run(test, n).Features;
        var fTrain = classifier.Run(train, m).Features;
        var fNoise = classifier.Run(noise, 2000).Features;
        int d = classifier.FeatureDim;
        double near = FrechetDistance.Compute(fTest, n, fTrain, m, d),
            far = FrechetDistance.Compute(fTest, n, fNoise, 2000, d);
        Assert.True(near * 20 < far, $"FD(test, train) = {near}, FD(test, noise) = {far}");
        Assert.Equal(0, FrechetDistance.Compute(fTest, n, fTest, n, d), 6);
        Assert.Equal(far, FrechetDistance.Compute(fNoise, 2000, fTest, n, d), 1e-6 * far);

        // The evaluator's noise floor is that test-vs-train distance at the count asked for; KID sees no difference
        // between the two samples of the data (within 3 standard errors) but a large one to noise.
        using var model = Fixtures.Load(Fixtures.Spec() with { Height = 28, Width = 28 });
        var evaluator = new Evaluator(model, classifier, test, n, train, m);
        var floor = evaluator.Floor(2000)!;
        Assert.Equal((near, 2000), (floor.FrechetDistance, floor.Count));
        Assert.True(Math.Abs(floor.Kid.Value) < 3 * floor.Kid.StandardError, $"KID(test, train) = {floor.Kid}");
        var noisy = KernelInceptionDistance.Compute(fTest, n, fNoise, 2000, d);
        Assert.True(noisy.Value > 20 * noisy.StandardError, $"KID(test, noise) = {noisy}");
        Assert.True(evaluator.Floor(200)!.FrechetDistance > 2 * near, "FD's bias grows as the count shrinks");
        Assert.Null(new Evaluator(model, classifier, test, n).Floor(2000));
    }

    [Fact]
    public void Several_seeds_are_single_runs_at_consecutive_seeds_each_with_its_own_floor_sample()
    {
        using var model = ConditionalModel();
        using var classifier = new FeatureClassifier(Fixtures.Classifier, new SessionSettings());
        var (test, n) = Evaluator.LoadReference(Test, 100, 784);
        // two disjoint floor samples of 100, then 50 left over
        var (train, m) = Evaluator.LoadReference(Train, 250, 784);
        var evaluator = new Evaluator(model, classifier, test, n, train, m);
        var request = new Generation.GenerationRequest
        {
            Sampler = "ddim", Steps = 5, Count = 100, BatchSize = 50, Seed = 7,
        };

        var series = evaluator.EvaluateSeeds(request, 3);
        Assert.Equal(3, series.Runs.Count);
        for (int k = 0; k < 3; k++)
        {
            var alone = evaluator.Evaluate(request with { Seed = 7 + (ulong)k });
            Assert.Equal((alone.FrechetDistance, alone.Kid, alone.ClassAccuracy),
                (series.Runs[k].FrechetDistance, series.Runs[k].Kid, series.Runs[k].ClassAccuracy));
        }
        Assert.NotEqual(series.Runs[0].FrechetDistance, series.Runs[1].FrechetDistance); // other noise, other images

        // Run k's floor is the reference against training images [100k, 100k + 100), computed here from the features.
        var fTest = classifier.Run(test, n).Features;
        var fTrain = classifier.Run(train, m).Features;
        int d = classifier.FeatureDim;
        for (int k = 0; k < 2; k++)
            Assert.Equal(FrechetDistance.Compute(fTest, n, fTrain.AsSpan(k * 100 * d, 100 * d), 100, d),
                series.Runs[k].Floor!.FrechetDistance, 9);
        Assert.NotEqual(series.Runs[0].Floor!.FrechetDistance, series.Runs[1].Floor!.FrechetDistance);
        Assert.Null(series.Runs[2].Floor); // 50 images left: no third disjoint sample

        // The summary is the mean and sample standard deviation of the runs.
        var fd = series.Runs.Select(r => r.FrechetDistance).ToArray();
        double mean = fd.Average();
        Assert.Equal(mean, series.FrechetDistance.Mean, 9);
        Assert.Equal(Math.Sqrt(fd.Sum(x => (x - mean) * (x - mean)) / 2), series.FrechetDistance.StandardDeviation, 9);
        Assert.Equal(2, series.FloorFrechetDistance!.Value.Count);
        Assert.Equal(series.Runs.Average(r => r.PerClassAccuracy[3]), series.PerClassAccuracy[3], 12);
        Assert.Throws<DiffusionArgumentException>(() => evaluator.EvaluateSeeds(request, 0));
    }

    [Fact]
    public void Real_images_class_accuracy_is_the_classifiers_on_the_labelled_reference_images()
    {
        using var model = ConditionalModel();
        using var classifier = new FeatureClassifier(Fixtures.Classifier, new SessionSettings());
        var (test, n) = Evaluator.LoadReference("fashion-mnist-test", 1000, 784);
        var labels = Evaluator.LoadReferenceLabels("fashion-mnist-test", n)!;
        Assert.Equal(n, labels.Length);
        // the test set's first labels: ankle boot, pullover, trouser, trouser, shirt
        Assert.Equal([9, 2, 1, 1, 6], labels[..5]);
        Assert.Null(Evaluator.LoadReferenceLabels("/some/images.npy", n));

        // Counted here from the classifier's predictions, per class and as the mean over classes.
        var predicted = classifier.Run(test, n).Predicted;
        var perClass = Enumerable.Range(0, 10).Select(c =>
            Enumerable.Range(0, 600).Count(i => labels[i] == c && predicted[i] == c) / (double)Enumerable.Range(0,
                600).Count(i => labels[i] == c)).ToArray();
        var evaluator = new Evaluator(model, classifier, test, n, referenceLabels: labels);
        var real = evaluator.Accuracy(600)!;
        Assert.Equal(600, real.Count);
        for (int c = 0; c < 10; c++) Assert.Equal(perClass[c], real.PerClass[c], 12);
        Assert.Equal(perClass.Average(), real.Overall, 12);
        Assert.InRange(real.Overall, 0.88, 0.97);   // 92.66 % on all 10 000
        Assert.True(real.PerClass[6] < real.PerClass[1], "shirts are harder than trousers");

        // Each result carries it at the result's count; without labels there is none.
        var result = evaluator.Evaluate(new Generation.GenerationRequest
        {
            Sampler = "ddim", Steps = 3, Count = 40, BatchSize = 40,
        });
        var atForty = evaluator.Accuracy(40)!;
        Assert.Equal((40, atForty.Overall), (result.Reference!.Count, result.Reference.Overall));
        Assert.Equal(atForty.PerClass, result.Reference.PerClass);
        Assert.Null(new Evaluator(model, classifier, test, n).Accuracy(40));
        var e = Assert.Throws<DiffusionException>(() =>
            new Evaluator(model, classifier, test, n, referenceLabels: labels[..10]));
        Assert.Contains("reference labels must be 1000 classes", e.Message);
        Assert.Throws<DiffusionException>(() =>
            new Evaluator(model, classifier, test, n, referenceLabels: labels.Select(l => l + 5).ToArray()));
    }

    [Fact]
    public void A_spread_is_the_mean_and_the_sample_standard_deviation()
    {
        var s = Spread.Of([1, 2, 3, 4]);
        Assert.Equal((2.5, 4), (s.Mean, s.Count));
        Assert.Equal(1.2909944487358056, s.StandardDeviation, 12); // √(5/3)
        Assert.Equal("2.5 ± 1.29", s.ToString());
        Assert.Equal(0, Spread.Of([3]).StandardDeviation);
        Assert.Throws<ArgumentException>(() => Spread.Of([]));
    }

    [Fact]
    public void Kid_is_the_unbiased_mmd_with_the_cubic_kernel_and_a_jackknife_standard_error()
    {
        var rng = new Random(3);
        int m = 13, n = 9, d = 5;
        var a = Enumerable.Range(0, m * d).Select(_ => (float)rng.NextDouble()).ToArray();
        var b = Enumerable.Range(0, n * d).Select(_ => (float)(rng.NextDouble() + 0.3)).ToArray();
        // Brute force, written from the definition: every pair, every deletion recomputed from scratch.
        static double K(float[] x, int i, float[] y, int j, int d)
        {
            double dot = 0;
            for (int k = 0; k < d; k++) dot += x[i * d + k] * y[j * d + k];
            return Math.Pow(dot / d + 1, 3);
        }
        static double Mmd(float[] x, int[] xs, float[] y, int[] ys, int d)
        {
            double within = 0, withinY = 0, across = 0;
            foreach (var i in xs) foreach (var j in xs) if (i != j) within += K(x, i, x, j, d);
            foreach (var i in ys) foreach (var j in ys) if (i != j) withinY += K(y, i, y, j, d);
            foreach (var i in xs) foreach (var j in ys) across += K(x, i, y, j, d);
            return within / (xs.Length * (xs.Length - 1.0))
                + withinY / (ys.Length * (ys.Length - 1.0)) - 2 * across / ((double)xs.Length * ys.Length);
        }
        var all = (Enumerable.Range(0, m).ToArray(), Enumerable.Range(0, n).ToArray());
        double Jackknife(int count, Func<int, double> leaveOut)
        {
            var v = Enumerable.Range(0, count).Select(leaveOut).ToArray();
            return (count - 1.0) / count * v.Sum(x => (x - v.Average()) * (x - v.Average()));
        }
        double variance = Jackknife(m, i => Mmd(a, all.Item1.Where(k => k != i).ToArray(), b, all.Item2, d))
                        + Jackknife(n, j => Mmd(a, all.Item1, b, all.Item2.Where(k => k != j).ToArray(), d));
        var kid = KernelInceptionDistance.Compute(a, m, b, n, d);
        // Feature dot products are float32, the sums double: agreement to 1e-6 relative.
        double expected = Mmd(a, all.Item1, b, all.Item2, d);
        Assert.True(Math.Abs(expected - kid.Value) < 1e-6 * expected, $"{expected} vs {kid.Value}");
        Assert.True(Math.Abs(Math.Sqrt(variance) - kid.StandardError) < 1e-5 * kid.StandardError,
            $"{Math.Sqrt(variance)} vs {kid.StandardError}");
        Assert.Equal(kid.Value, KernelInceptionDistance.Compute(b, n, a, m, d).Value, 1e-9); // symmetric
    }

    [Fact]
    public void Kid_does_not_depend_on_the_count_where_fd_does()
    {
        // Two independent samples of the same 16-d Gaussian: FD's estimate shrinks with the count, KID's stays at 0.
        const int d = 16;
        float[] Draw(int count, uint key)
        {
            var x = new float[count * d];
            new Noise.NoiseGenerator(11).Fill(x, 0, x.Length, key);
            return x;
        }
        foreach (var count in new[] { 100, 1000 })
        {
            var kid = KernelInceptionDistance.Compute(Draw(count, 1), count, Draw(count, 2), count, d);
            Assert.True(Math.Abs(kid.Value) < 3 * kid.StandardError, $"{count}: KID {kid}");
        }
        double fd100 = FrechetDistance.Compute(Draw(100, 1), 100, Draw(100, 2), 100, d),
            fd1000 = FrechetDistance.Compute(Draw(1000, 1), 1000, Draw(1000, 2), 1000, d);
        Assert.True(fd100 > 5 * fd1000, $"FD at 100: {fd100}, at 1000: {fd1000}");
        // A shift of 0.3 in every coordinate is seen at both counts.
        var shifted = Draw(1000, 3).Select(v => v + 0.3f).ToArray();
        var far = KernelInceptionDistance.Compute(Draw(1000, 1), 1000, shifted, 1000, d);
        Assert.True(far.Value > 10 * far.StandardError, $"shifted: KID {far}");
    }

    [Fact]
    public void The_classifier_recognises_the_test_set()
    {
        using var classifier = new FeatureClassifier(Fixtures.Classifier, new SessionSettings());
        var (pixels, labels, count, _, _) = Idx.ReadImages(Test, Test.Replace("images-idx3", "labels-idx1"));
        var images = pixels.Select(b => b / 127.5f - 1).ToArray();
        var predicted = classifier.Run(images, count).Predicted;
        double accuracy = predicted.Zip(labels!, (a, b) => a == b ? 1.0 : 0.0).Average();
        Assert.True(accuracy >= 0.9, $"accuracy {accuracy:P2}");
    }

    [Fact]
    public void The_benchmark_plan_gives_each_sampler_its_own_budget_and_the_report_picks_the_best_per_budget()
    {
        var plan = new BenchmarkPlan
        {
            Samplers = ["ddim", "heun", "pc", "rk45"], Budgets = [4, 10], FullLength = new HashSet<string> { "ddim" },
            Tolerances = [1e-2],
        };
        Assert.Equal([("ddim", 4, 0.0), ("ddim", 10, 0.0), ("ddim", 1000, 0.0), ("heun", 2, 0.0), ("heun", 5, 0.0),
            ("pc", 2, 0.0), ("pc", 5, 0.0), ("rk45", 1, 1e-2)],
            plan.Configurations(1000));
        Assert.Equal("Count",
            Assert.Throws<DiffusionArgumentException>(() => (plan with { Count = 0 }).Validate()).Parameter);
        Assert.Equal("Budgets",
            Assert.Throws<DiffusionArgumentException>(() => (plan with { Budgets = [0] }).Validate()).Parameter);
        Assert.Equal("Samplers",
            Assert.Throws<DiffusionArgumentException>(() => (plan with { Samplers = ["plms"] }).Validate()).Parameter);

        using var model = ConditionalModel();
        using var classifier = new FeatureClassifier(Fixtures.Classifier, new SessionSettings());
        var (reference, n) = Evaluator.LoadReference(Test, 64, 784);
        var rows = SamplerBenchmark.Run(new Evaluator(model, classifier, reference, n), plan with
        {
            Samplers = ["ddim", "heun"], FullLength = new HashSet<string>(), Count = 64, BatchSize = 64,
            HeadlineCount = 0,
        });
        // Heun: 2 per step, 1 for the last
        Assert.Equal([4.0, 10.0, 3.0, 9.0], rows.Select(r => r.Result.EvaluationsPerImage));
        var dir = Fixtures.TempFolder();
        BenchmarkReport.Write(dir, rows,
            new BenchmarkRun("test", "g.onnx", 64, 1, false, "cpu", TimeSpan.FromSeconds(1), [4, 10]));
        var report = File.ReadAllText(Path.Combine(dir, "report.md"));
        var best4 = rows.Where(r => r.Result.EvaluationsPerImage <= 4).MinBy(r => r.Result.FrechetDistance)!.Result;
        Assert.Contains($"| 4 | {best4.Sampler} ({best4.EvaluationsPerImage:0.#} NFE) |", report);
        Assert.Equal(5, File.ReadAllLines(Path.Combine(dir, "results.csv")).Length);
    }
}
