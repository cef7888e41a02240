using Diffusion.OnnxGraph;
using Diffusion.Runtime.Onnx;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.ReferenceModels;

/// <summary>What the closed-form Gaussian model looks like.</summary>
public sealed record GaussianModelSpec
{
    /// <summary>Image channels.</summary>
    public int Channels { get; init; } = 1;
    /// <summary>Image height.</summary>
    public int Height { get; init; } = 8;
    /// <summary>Image width.</summary>
    public int Width { get; init; } = 8;
    /// <summary>Per-channel data mean μ (unconditional models).</summary>
    public float[] Mean { get; init; } = [0.5f];
    /// <summary>Per-channel data standard deviation s.</summary>
    public float[] Std { get; init; } = [0.3f];
    /// <summary>
    /// Class-conditional means [num_classes + 1][C]; the last row is the null (unconditional) label's. Null:
    /// unconditional model.
    /// </summary>
    public float[][]? ClassMeans { get; init; }
    /// <summary>
    /// Scheduler config (prediction_type decides the output; sample_size, in_channels, num_classes are filled in).
    /// </summary>
    public DiffusionConfig Config { get; init; } = new();
    /// <summary>Declare the timestep input as int64 (foreign-model layout) instead of float32.</summary>
    public bool Int64Timestep { get; init; }
    /// <summary>Declare the timestep input as int32 (some exports) instead of float32.</summary>
    public bool Int32Timestep { get; init; }
    /// <summary>
    /// Declare x_t, the output, a float timestep and the conditioning input as float16 (a float16 export); the
    /// arithmetic stays float32 inside.
    /// </summary>
    public bool Float16 { get; init; }
    /// <summary>
    /// The name of a float conditioning input [B, sequence, C] (an <c>encoder_hidden_states</c>-like tensor with an
    /// open sequence length) whose mean over the sequence is each image's data mean μ — so a guided generation's
    /// samples have the mean μ_∅ + w(μ_c − μ_∅), ε* being linear in μ. Null: no such input (μ from
    /// <see cref="Mean"/> or <see cref="ClassMeans"/>).
    /// </summary>
    public string? MeanInput { get; init; }
    /// <summary>Leave x_t's height and width open in the graph (a latent UNet sampled at any size).</summary>
    public bool DynamicSize { get; init; }
    /// <summary>Declare the timestep input as a scalar instead of [B].</summary>
    public bool ScalarTimestep { get; init; }
    /// <summary>Write the diffusion.config metadata.</summary>
    public bool WithMetadata { get; init; } = true;
    /// <summary>Name of the output.</summary>
    public string OutputName { get; init; } = "model_output";
    /// <summary>Name of the x_t input.</summary>
    public string SampleInput { get; init; } = "sample";
    /// <summary>
    /// A fixed batch size for every input and the output (foreign exports often have one); null: dynamic.
    /// </summary>
    public int? FixedBatch { get; init; }
    /// <summary>
    /// A learned-variance model's v, the same for every value (−1: Σ = β̃, fixed_small's; +1: Σ = β, fixed_large's):
    /// the output gains C channels of it after the prediction and the config says variance_type learned_range.
    /// Null: a fixed variance, as the config names it.
    /// </summary>
    public float? LearnedVariance { get; init; }
}

/// <summary>
/// The exact denoiser of per-pixel N(μ, s²) data, as an ONNX graph (the correctness anchor of every sampler test):
/// ᾱ = ᾱ(t) by Gather on the schedule's table with linear interpolation for fractional t, then
/// ε* = √(1−ᾱ)(x − √ᾱ μ)/(ᾱs² + 1 − ᾱ), x₀* = μ + √ᾱ s² (x − √ᾱ μ)/(ᾱs² + 1 − ᾱ), v* = √ᾱ ε* − √(1−ᾱ) x₀*.
/// Every correct sampler must turn its noise into samples of mean μ and standard deviation s.
/// </summary>
public static class GaussianModel
{
    /// <summary>The model's ONNX bytes.</summary>
    public static byte[] Build(GaussianModelSpec spec)
    {
        int c = spec.Channels;
        if (spec.Mean.Length != c || spec.Std.Length != c)
            throw new ArgumentException($"Mean and Std need {c} entries (one per channel).");
        var config = spec.Config with
        {
            SampleSize = [spec.Height, spec.Width],
            InChannels = c,
            NumClasses = spec.ClassMeans is null ? 0 : spec.ClassMeans.Length - 1,
            VarianceType = spec.LearnedVariance is null ? spec.Config.VarianceType : "learned_range",
        };
        config.Validate("Gaussian model spec");
        var schedule = config.CreateSchedule();
        int timesteps = schedule.TrainTimesteps;

        var g = new GraphBuilder("gaussian_denoiser");
        Dim batch = spec.FixedBatch is int fixedBatch ? fixedBatch : "batch";
        if (spec.MeanInput is not null && spec.ClassMeans is not null)
            throw new ArgumentException("A Gaussian model takes its mean from class labels or from MeanInput, not both.");
        var floatType = spec.Float16 ? DataType.Float16 : DataType.Float;
        Value FromDeclared(Value v) => spec.Float16 ? g.Cast(v, DataType.Float) : v;
        Dim height = spec.DynamicSize ? "height" : spec.Height, width = spec.DynamicSize ? "width" : spec.Width;
        var x = FromDeclared(g.Input(spec.SampleInput, floatType, batch, c, height, width));
        Dim[] tShape = spec.ScalarTimestep ? [] : [batch];
        var tIn = g.Input("timestep", spec.Int64Timestep ? DataType.Int64 : spec.Int32Timestep ? DataType.Int32
            : floatType, tShape);
        Value? labels = spec.ClassMeans is null ? null : g.Input("class_labels", DataType.Int64, batch);
        Value? means = spec.MeanInput is null ? null
            : FromDeclared(g.Input(spec.MeanInput, floatType, batch, "sequence", c));

        // ᾱ(t): clamp t to [0, T−1], interpolate the table between ⌊t⌋ and ⌊t⌋ + 1 — NoiseSchedule.AlphaBar's
        // definition, as graph nodes.
        var table = g.Initializer("alphas_cumprod", schedule.AlphasCumprod.ToArray().Select(v => (float)v).ToArray(),
            timesteps);
        var t = spec.Int64Timestep || spec.Int32Timestep || spec.Float16 ? g.Cast(tIn, DataType.Float) : tIn;
        t = g.Max(g.Min(t, g.Scalar(timesteps - 1)), g.Scalar(0));
        var floor = g.Floor(t);
        var i0 = g.Cast(floor, DataType.Int64);
        var i1 = g.Cast(g.Min(g.Add(floor, g.Scalar(1)), g.Scalar(timesteps - 1)), DataType.Int64);
        var a0 = g.Gather(table, i0);
        var ab = g.Add(a0, g.Mul(g.Sub(t, floor), g.Sub(g.Gather(table, i1), a0)));
        ab = g.Reshape(ab, -1, 1, 1, 1);

        Value mu = means is { } m
            ? g.Reshape(g.Node("ReduceMean", [m], null, Attr.Ints("axes", 1), Attr.Int("keepdims", 0)), -1, c, 1, 1)
            : labels is { } l
            ? g.Reshape(g.Gather(g.Initializer("class_means", spec.ClassMeans!.SelectMany(r => r).ToArray(),
                spec.ClassMeans!.Length, c), l), -1, c, 1, 1)
            : g.Initializer("mean", spec.Mean, 1, c, 1, 1);
        var variance = g.Initializer("variance", spec.Std.Select(s => s * s).ToArray(), 1, c, 1, 1);

        var sqrtAb = g.Sqrt(ab);
        var oneMinusAb = g.Sub(g.Scalar(1), ab);
        var sqrtOneMinusAb = g.Sqrt(oneMinusAb);
        var centered = g.Sub(x, g.Mul(sqrtAb, mu));                       // x − √ᾱ μ
        var denom = g.Add(g.Mul(ab, variance), oneMinusAb);               // ᾱ s² + 1 − ᾱ
        var eps = g.Div(g.Mul(sqrtOneMinusAb, centered), denom);
        var x0 = g.Add(mu, g.Div(g.Mul(g.Mul(sqrtAb, variance), centered), denom));
        var output = config.Prediction switch
        {
            PredictionType.Epsilon => eps,
            PredictionType.Sample => x0,
            // PredictionTypes.Velocity, as graph nodes
            PredictionType.VPrediction => g.Sub(g.Mul(sqrtAb, eps), g.Mul(sqrtOneMinusAb, x0)),
            _ => throw new ArgumentOutOfRangeException(nameof(spec)),
        };
        if (spec.LearnedVariance is float v) // [prediction | v] along the channels
            output = g.Node("Concat", [output, g.Add(g.Mul(x, g.Scalar(0)), g.Scalar(v))], null, Attr.Int("axis", 1));
        if (spec.Float16) output = g.Cast(output, DataType.Float16);
        g.Output(output, spec.OutputName, floatType, batch, spec.LearnedVariance is null ? c : 2 * c, height, width);

        var model = new ModelBuilder(g).Doc("Closed-form denoiser of per-pixel Gaussian data (Diffusion for .NET " +
            "reference model).");
        if (spec.WithMetadata) model.Metadata(DiffusionConfig.MetadataKey, config.ToJson());
        return model.ToBytes();
    }

    /// <summary>
    /// The model bundled until a trained one ships: 32×32 RGB, four colour classes plus the null label.
    /// </summary>
    public static GaussianModelSpec Bundled => new()
    {
        Channels = 3,
        Height = 32,
        Width = 32,
        Mean = [0f, 0f, 0f],
        Std = [0.25f, 0.25f, 0.25f],
        ClassMeans =
        [
            [0.6f, -0.5f, -0.5f],  // red
            [-0.5f, 0.5f, -0.5f],  // green
            [-0.5f, -0.3f, 0.6f],  // blue
            [0.5f, 0.4f, -0.6f],   // yellow
            [0f, 0f, 0f],          // null label: grey
        ],
        Config = new DiffusionConfig { ClassNames = ["red", "green", "blue", "yellow"], NumClasses = 4 },
    };
}
