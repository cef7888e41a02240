using Diffusion.Cli;
using Diffusion.Cli.Commands;
using Diffusion.Cli.Evaluation;
using Diffusion.Cli.ReferenceModels;
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
        using var classifier = new FeatureClassifier(EvalCommand.DefaultClassifier, new SessionSettings());
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
        using var classifier = new FeatureClassifier(EvalCommand.DefaultClassifier, new SessionSettings());
        var (pixels, labels, count, _, _) = Idx.ReadImages(Test, Test.Replace("images-idx3", "labels-idx1"));
        var images = pixels.Select(b => b / 127.5f - 1).ToArray();
        var predicted = classifier.Run(images, count).Predicted;
        double accuracy = predicted.Zip(labels!, (a, b) => a == b ? 1.0 : 0.0).Average();
        Assert.True(accuracy >= 0.9, $"accuracy {accuracy:P2}");
    }

    [Fact]
    public async Task Bench_writes_the_report_with_measured_nfe()
    {
        var dir = Fixtures.TempFolder();
        var modelPath = Path.Combine(dir, "g.onnx");
        File.WriteAllBytes(modelPath, GaussianModel.Build(Fixtures.Spec() with
        {
            Height = 28, Width = 28,
            ClassMeans = Enumerable.Range(0, 11).Select(c => new[] { c / 10f - 0.5f }).ToArray(),
            Config = new DiffusionConfig { NumClasses = 10 },
        }));
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await Program.Run(["bench", "--model", modelPath, "--out", Path.Combine(dir, "report"), "--samplers", "ddim,heun,rk45",
            "--nfe", "4,10", "--full", "none", "--rk45-tolerances", "0.1", "--count", "40", "--batch", "20"], output, error);
        Assert.True(code == 0, error.ToString());
        var csv = File.ReadAllLines(Path.Combine(dir, "report", "results.csv"));
        Assert.Equal(1 + 2 + 2 + 1, csv.Length);
        Assert.StartsWith("heun,2,,3,", csv[3]); // 4 NFE → 2 Heun steps → 3 evaluations
        Assert.StartsWith("heun,5,,9,", csv[4]); // 10 NFE → 5 Heun steps → 2·5 − 1 evaluations
        Assert.StartsWith("rk45,", csv[5]);
        Assert.Contains(",0.1,", csv[5]);
        Assert.StartsWith("<svg", File.ReadAllText(Path.Combine(dir, "report", "fd_vs_nfe.svg")));
        var report = File.ReadAllText(Path.Combine(dir, "report", "report.md"));
        Assert.Contains("| ddim | 10 steps | 10 |", report);
        Assert.Contains("| rk45 | tol 1e-1 |", report);
        Assert.Contains($"Made with `./diffusion bench --model {modelPath} --out", report);
        Assert.Contains("| NFE ≤ | best sampler |", report);
        Assert.Matches(@"\n\| 4 \| (ddim|heun) \([34] NFE\) \|", report); // only rows within the budget compete
        Assert.Matches(@"\n\| 10 \| \w+ \(\d+ NFE\) \|", report);
        Assert.Equal(2, await Program.Run(["bench", "--model", modelPath, "--out", Path.Combine(dir, "r2"), "--rk45-tolerances", "tight"], output, error));
        Assert.Contains("--rk45-tolerances 'tight' is not a positive number", error.ToString());

        code = await Program.Run(["eval", "--model", modelPath, "--count", "20", "--steps", "5"], output, error);
        Assert.True(code == 0, error.ToString());
        Assert.Contains("Fréchet distance", output.ToString());
        Assert.Equal(1, await Program.Run(["eval", "--count", "20", "--model", ModelArguments.GaussianModelPath], output, error)); // RGB 32×32 does not fit the classifier
        Assert.Contains("the model makes 3072 values per image", error.ToString());
    }

    [Fact]
    public async Task Schedules_writes_four_svg_plots()
    {
        var dir = Fixtures.TempFolder();
        Assert.Equal(0, await Program.Run(["schedules", "--out", dir], new StringWriter(), new StringWriter()));
        foreach (var file in new[] { "beta.svg", "alpha_bar.svg", "sigma_vp.svg", "log_snr.svg" })
        {
            var svg = File.ReadAllText(Path.Combine(dir, file));
            Assert.Contains("<polyline", svg);
            Assert.Contains("cosine", svg);
        }
    }
}
