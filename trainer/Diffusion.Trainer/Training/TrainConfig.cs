using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Nn;

namespace Diffusion.Trainer.Training;

/// <summary>
/// Everything a training run is made of: one plain record; the checkpoint stores it, --resume reads it back.
/// </summary>
public sealed record TrainConfig
{
    /// <summary>Data set (see Datasets.Open).</summary>
    public string Data { get; init; } = "fashion-mnist";
    /// <summary>Resize an image folder's images to N×N (null: they must share one size, which is kept).</summary>
    public int? ImageSize { get; init; }
    /// <summary>Use only the first N images (0 = all).</summary>
    public int Limit { get; init; }
    /// <summary>The network.</summary>
    public UNetConfig Net { get; init; } = new();
    /// <summary>Condition on the data's class labels (with label dropout for guidance) when it has them.</summary>
    public bool Conditional { get; init; } = true;
    /// <summary>Noise schedule and prediction type, with diffusers' names (written into the exported model).</summary>
    public DiffusionConfig Diffusion { get; init; } = new();
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 10_000;
    /// <summary>Images per step.</summary>
    public int Batch { get; init; } = 64;
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 2e-4;
    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 200;
    /// <summary>
    /// Steps at the end of <see cref="Steps"/> over which the learning rate falls linearly to zero
    /// (warmup–stable–decay; 0 = constant to the end). A resumed run may set it, so the end of an open-ended run is
    /// chosen when it comes.
    /// </summary>
    public int DecaySteps { get; init; }
    /// <summary>AdamW's decoupled weight decay.</summary>
    public double WeightDecay { get; init; }
    /// <summary>Gradient-norm clip (0 = none).</summary>
    public double GradClip { get; init; } = 1.0;
    /// <summary>EMA decay of the weights.</summary>
    public double EmaDecay { get; init; } = 0.999;
    /// <summary>Loss weighting over timesteps.</summary>
    public LossWeighting Weighting { get; init; } = LossWeighting.Simple;
    /// <summary>γ of Min-SNR-γ.</summary>
    public double MinSnrGamma { get; init; } = 5;
    /// <summary>Probability of replacing a label by the null label (classifier-free guidance training).</summary>
    public double LabelDropout { get; init; } = 0.1;
    /// <summary>
    /// Random horizontal flips: an augmentation for mirror-symmetric data only. Fashion-MNIST is not (its shoes all
    /// face one way): a model trained on flipped images learns the mirrored half too, which is ≈ 65 FD from the test
    /// set.
    /// </summary>
    public bool Flip { get; init; }
    /// <summary>Seed of every random draw (weights, batches, noise, t, dropout).</summary>
    public ulong Seed { get; init; }
    /// <summary>cpu or cuda[:N].</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>
    /// Arithmetic of the forward and backward passes (the weights, the optimizer and the checkpoint stay float32).
    /// </summary>
    public Precision Precision { get; init; } = Precision.Float32;
    /// <summary>Checkpoint every N steps.</summary>
    public int CheckpointEvery { get; init; } = 500;
    /// <summary>Write a sample grid through the runtime every N steps (0 = never).</summary>
    public int SampleEvery { get; init; } = 1000;

    /// <summary>
    /// Checks every value against its range and says which is wrong, before anything is allocated. The network's
    /// shape is checked once it is fitted to the data (<see cref="UNetConfig.Validate"/>).
    /// </summary>
    public void Validate()
    {
        var c = this;
        static void Check(bool ok, string parameter, string problem)
        {
            if (!ok) throw new DiffusionArgumentException(parameter, problem);
        }
        Check(c.Net is not null && c.Diffusion is not null && c.Data is not null && c.Device is not null,
            nameof(c.Net), "the network, diffusion, data and device settings must all be given.");
        Check(c.Steps > 0, nameof(c.Steps), $"expected a positive number of steps, got {c.Steps}.");
        Check(c.Batch is > 0 and <= 65_536, nameof(c.Batch), $"expected a batch in 1…65536, got {c.Batch}.");
        Check(c.MinSnrGamma > 0 && double.IsFinite(c.MinSnrGamma), nameof(c.MinSnrGamma),
            $"expected a positive γ, got {c.MinSnrGamma}.");
        Check(c.LearningRate > 0 && double.IsFinite(c.LearningRate), nameof(c.LearningRate),
            $"expected a positive number, got {c.LearningRate}.");
        Check(c.EmaDecay is >= 0 and < 1, nameof(c.EmaDecay), $"expected a decay in [0, 1), got {c.EmaDecay}.");
        Check(c.Net!.Dropout is >= 0 and < 1, nameof(c.Net.Dropout),
            $"expected a rate in [0, 1), got {c.Net.Dropout}.");
        Check(c.LabelDropout is >= 0 and < 1, nameof(c.LabelDropout),
            $"expected a rate in [0, 1), got {c.LabelDropout}.");
        Check(c.CheckpointEvery > 0, nameof(c.CheckpointEvery),
            $"expected a positive number of steps, got {c.CheckpointEvery}.");
        Check(Enum.IsDefined(c.Precision), nameof(c.Precision), $"{(int)c.Precision}: expected fp32 or bf16.");
        Check(c.DecaySteps >= 0 && c.DecaySteps <= c.Steps, nameof(c.DecaySteps),
            $"expected 0…{c.Steps} (the run's steps), got {c.DecaySteps}.");
        Check(c.WarmupSteps >= 0, nameof(c.WarmupSteps), $"expected 0 or more steps, got {c.WarmupSteps}.");
        Check(c.WeightDecay >= 0 && double.IsFinite(c.WeightDecay), nameof(c.WeightDecay),
            $"expected 0 or more, got {c.WeightDecay}.");
        Check(c.GradClip >= 0 && double.IsFinite(c.GradClip), nameof(c.GradClip),
            $"expected 0 (none) or a positive norm, got {c.GradClip}.");
        Check(c.SampleEvery >= 0, nameof(c.SampleEvery), $"expected 0 (never) or more steps, got {c.SampleEvery}.");
        Check(c.Limit >= 0, nameof(c.Limit), $"expected 0 (all) or more images, got {c.Limit}.");
        Check(Enum.IsDefined(c.Weighting), nameof(c.Weighting), $"{(int)c.Weighting}: not a loss weighting.");
        Check(!c.Diffusion!.LearnsVariance, nameof(c.Diffusion.VarianceType),
            "learned_range is what a network trained with --learn-sigma exports; ask for that instead.");
    }
}

/// <summary>The arithmetic of a training step's forward and backward passes.</summary>
public enum Precision
{
    /// <summary>float32 throughout (--precision fp32).</summary>
    Float32,
    /// <summary>
    /// Mixed precision (--precision bf16): bfloat16 activations on bfloat16 copies of the float32 weights; gradients,
    /// AdamW, EMA, loss and checkpoint in float32. About 1.5× the images/s on CPUs with AVX512-BF16 (or AMX); emulated,
    /// and slower than float32, on CPUs without.
    /// </summary>
    BFloat16,
}

/// <summary>The command-line names of <see cref="Precision"/>: fp32 and bf16.</summary>
public static class PrecisionNames
{
    /// <summary>
    /// fp32/float32 or bf16/bfloat16 (any case); anything else is one clear error naming <paramref name="option"/>.
    /// </summary>
    public static Precision Parse(string text, string option = nameof(TrainConfig.Precision)) =>
        text.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" => Precision.Float32,
        "bf16" or "bfloat16" => Precision.BFloat16,
        _ => throw new DiffusionArgumentException(option, $"'{text}': expected fp32 or bf16."),
    };

    /// <summary>fp32 or bf16.</summary>
    public static string Name(this Precision precision) => precision == Precision.BFloat16 ? "bf16" : "fp32";

    /// <summary>The TorchSharp element type of the activations.</summary>
    public static TorchSharp.torch.ScalarType ScalarType(this Precision precision) =>
        precision == Precision.BFloat16 ? TorchSharp.torch.ScalarType.BFloat16 : TorchSharp.torch.ScalarType.Float32;
}
