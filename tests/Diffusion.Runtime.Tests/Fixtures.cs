using Diffusion.Cli.ReferenceModels;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Tests;

/// <summary>Closed-form Gaussian models and statistics shared by the tests.</summary>
internal static class Fixtures
{
    public const float Mean = 0.5f, Std = 0.3f;

    /// <summary>An 8×8 single-channel model of N(0.5, 0.3²) data.</summary>
    public static GaussianModelSpec Spec(string prediction = "epsilon") => new()
    {
        Mean = [Mean],
        Std = [Std],
        Config = new DiffusionConfig { PredictionType = prediction },
    };

    public static DiffusionModel Load(GaussianModelSpec spec, ModelOptions? options = null) =>
        DiffusionModel.Load(GaussianModel.Build(spec), "gaussian-test-model", options);

    public static DiffusionModel Gaussian(string prediction = "epsilon") => Load(Spec(prediction));

    public static GenerationResult Generate(DiffusionModel model, string sampler, int steps, int count = 2048, int batch = 512, ulong seed = 7,
        bool karras = false, double? eta = null, double rtol = 1e-3) =>
        new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = sampler,
            Steps = steps,
            Count = count,
            BatchSize = batch,
            Seed = seed,
            KarrasSigmas = karras,
            Options = new Samplers.SamplerOptions { Eta = eta, RelativeTolerance = rtol, AbsoluteTolerance = rtol },
        });

    public static (double Mean, double Std) Moments(ReadOnlySpan<float> values)
    {
        double sum = 0, sq = 0;
        foreach (var v in values) { sum += v; sq += (double)v * v; }
        double mean = sum / values.Length;
        return (mean, Math.Sqrt(sq / values.Length - mean * mean));
    }

    public static string TempFolder()
    {
        return TestFolders.Create("diffusion-tests");
    }
}
