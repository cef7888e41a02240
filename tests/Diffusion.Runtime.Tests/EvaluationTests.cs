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
        double near = FrechetDistance.Compute(fTest, n, fTrain, m, d), far = FrechetDistance.Compute(fTest, n, fNoise, 2000, d);
        Assert.True(near * 20 < far, $"FD(test, train) = {near}, FD(test, noise) = {far}");
        Assert.Equal(0, FrechetDistance.Compute(fTest, n, fTest, n, d), 6);
        Assert.Equal(far, FrechetDistance.Compute(fNoise, 2000, fTest, n, d), 1e-6 * far);
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
        var plan = new BenchmarkPlan { Samplers = ["ddim", "heun", "pc", "rk45"], Budgets = [4, 10], FullLength = new HashSet<string> { "ddim" }, Tolerances = [1e-2] };
        Assert.Equal([("ddim", 4, 0.0), ("ddim", 10, 0.0), ("ddim", 1000, 0.0), ("heun", 2, 0.0), ("heun", 5, 0.0), ("pc", 2, 0.0), ("pc", 5, 0.0), ("rk45", 1, 1e-2)],
            plan.Configurations(1000));
        Assert.Contains("Count", Assert.Throws<DiffusionArgumentException>(() => (plan with { Count = 0 }).Validate()).Message);
        Assert.Contains("Budgets", Assert.Throws<DiffusionArgumentException>(() => (plan with { Budgets = [0] }).Validate()).Message);

        using var model = Fixtures.Load(Fixtures.Spec() with
        {
            Height = 28, Width = 28,
            ClassMeans = Enumerable.Range(0, 11).Select(c => new[] { c / 10f - 0.5f }).ToArray(),
            Config = new DiffusionConfig { NumClasses = 10 },
        });
        using var classifier = new FeatureClassifier(Fixtures.Classifier, new SessionSettings());
        var (reference, n) = Evaluator.LoadReference(Test, 64, 784);
        var rows = SamplerBenchmark.Run(new Evaluator(model, classifier, reference, n), plan with { Samplers = ["ddim", "heun"], FullLength = new HashSet<string>(), Count = 64, BatchSize = 64 });
        Assert.Equal([4.0, 10.0, 3.0, 9.0], rows.Select(r => r.Result.EvaluationsPerImage)); // Heun: 2 per step, 1 for the last
        var dir = Fixtures.TempFolder();
        BenchmarkReport.Write(dir, rows, new BenchmarkRun("test", "g.onnx", 64, 1, false, "cpu", TimeSpan.FromSeconds(1), [4, 10]));
        var report = File.ReadAllText(Path.Combine(dir, "report.md"));
        var best4 = rows.Where(r => r.Result.EvaluationsPerImage <= 4).MinBy(r => r.Result.FrechetDistance)!.Result;
        Assert.Contains($"| 4 | {best4.Sampler} ({best4.EvaluationsPerImage:0.#} NFE) |", report);
        Assert.Equal(5, File.ReadAllLines(Path.Combine(dir, "results.csv")).Length);
    }
}
