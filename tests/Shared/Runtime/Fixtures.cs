using Diffusion.OnnxGraph;
using Diffusion.ReferenceModels;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.Tests;

/// <summary>Closed-form Gaussian models and statistics shared by the tests.</summary>
public static class Fixtures
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

    public static GenerationResult Generate(DiffusionModel model, string sampler, int steps, int count = 2048,
        int batch = 512, ulong seed = 7,
        bool karras = false, double? eta = null, double? rtol = null) =>
        new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = sampler,
            Steps = steps,
            Count = count,
            BatchSize = batch,
            Seed = seed,
            KarrasSigmas = karras,
            Options = new Diffusion.Runtime.Samplers.SamplerOptions
            {
                Eta = eta, RelativeTolerance = rtol, AbsoluteTolerance = rtol,
            },
        });

    public static (double Mean, double Std) Moments(ReadOnlySpan<float> values)
    {
        double sum = 0, sq = 0;
        foreach (var v in values) { sum += v; sq += (double)v * v; }
        double mean = sum / values.Length;
        return (mean, Math.Sqrt(sq / values.Length - mean * mean));
    }

    /// <summary>A model whose output is NaN wherever x &gt; 1 (sqrt of a negative number), finite elsewhere.</summary>
    public static byte[] NanModel()
    {
        var g = new GraphBuilder("nan");
        var x = g.Input("sample", DataType.Float, "batch", 1, 8, 8);
        g.Input("timestep", DataType.Float, "batch");
        g.Output(g.Sqrt(g.Sub(g.Scalar(1), x)), "model_output", DataType.Float, "batch", 1, 8, 8);
        return new ModelBuilder(g).Metadata(DiffusionConfig.MetadataKey, new DiffusionConfig().ToJson()).ToBytes();
    }

    /// <summary>The repository's models/ folder as copied beside the tests.</summary>
    public static string ModelsFolder => Path.Combine(AppContext.BaseDirectory, "models");

    /// <summary>The shipped feature classifier of the quality metric.</summary>
    public static string Classifier => Path.Combine(ModelsFolder, "fashion-mnist", "classifier.onnx");

    /// <summary>The committed closed-form Gaussian model (32×32 RGB, four colour classes).</summary>
    public static string GaussianModelPath => Path.Combine(ModelsFolder, "gaussian", "gaussian.onnx");

    /// <summary>A new temporary folder, removed when the tests end.</summary>
    public static string TempFolder()
    {
        return TestFolders.Create("diffusion-tests");
    }
}
