using System.CommandLine;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Commands;

/// <summary>
/// The options of <c>train</c>, their defaults taken from <see cref="TrainConfig"/> and <see cref="UNetConfig"/>, and
/// what a parsed command line makes of them: a new run's config, or the changes a resumed run takes.
/// </summary>
internal sealed class TrainOptions
{
    private static readonly TrainConfig Defaults = new();

    public Option<string> Data { get; } = new("--data")
    {
        Description = "fashion-mnist, fashion-mnist-test, an IDX images file, a CIFAR-10 folder/file, or a folder of "
            + $"images ({string.Join(", ", Diffusion.Runtime.Imaging.ImageFile.InputFormats)}; subfolders are " +
                $"classes).",
        DefaultValueFactory = _ => Defaults.Data,
    };
    public Option<int?> Size { get; } = new("--size")
    {
        Description = "Resize a folder's images to N×N (centre crop, Lanczos3); without it they must share one size.",
    };
    public Option<string> Out { get; } = new("--out")
    {
        Description = "Run folder: checkpoint.pt, loss.csv, model.onnx, sample grids.", Required = true,
    };
    public Option<int> Steps { get; } = new("--steps")
    {
        Description = "Optimizer steps in all.", DefaultValueFactory = _ => Defaults.Steps,
    };
    public Option<int> Batch { get; } = new("--batch")
    {
        Description = "Images per step.", DefaultValueFactory = _ => Defaults.Batch,
    };
    public Option<double> LearningRate { get; } = new("--lr")
    {
        Description = "Peak learning rate (AdamW).", DefaultValueFactory = _ => Defaults.LearningRate,
    };
    public Option<int> Warmup { get; } = new("--warmup")
    {
        Description = "Linear learning-rate warm-up steps.", DefaultValueFactory = _ => Defaults.WarmupSteps,
    };
    public Option<int> DecaySteps { get; } = new("--decay-steps")
    {
        Description = "Linear learning-rate cool-down to zero over the last N of --steps (0 = constant to the end); "
            + "applies on --resume too, to end an open-ended run.",
        DefaultValueFactory = _ => Defaults.DecaySteps,
    };
    public Option<int> Channels { get; } = new("--channels")
    {
        Description = "Base channels.", DefaultValueFactory = _ => Defaults.Net.BaseChannels,
    };
    public Option<string> Mults { get; } = new("--mults")
    {
        Description = "Channel multipliers per level.",
        DefaultValueFactory = _ => string.Join(",", Defaults.Net.ChannelMults),
    };
    public Option<int> ResBlocks { get; } = new("--res-blocks")
    {
        Description = "Residual blocks per level.", DefaultValueFactory = _ => Defaults.Net.ResBlocks,
    };
    public Option<string> Attention { get; } = new("--attention")
    {
        Description = "Resolutions with self-attention (comma-separated; empty for none).",
        DefaultValueFactory = _ => string.Join(",", Defaults.Net.AttentionResolutions),
    };
    public Option<bool> ScaleShift { get; } = new("--scale-shift")
    {
        Description = "Condition each residual block by scaling and shifting its second norm with the time/class "
            + "embedding (AdaGN, Dhariwal & Nichol 2021) instead of adding it.",
    };
    public Option<bool> LearnSigma { get; } = new("--learn-sigma")
    {
        Description = "Learn the reverse variance too (Nichol & Dhariwal 2021): the network outputs v for " +
            "Σ = exp(f log β + (1 − f) log β̃), f = (v + 1)/2, trained with the hybrid loss L_simple + 0.001 L_vlb " +
                "(the mean held fixed in L_vlb); exported with variance_type learned_range.",
    };
    public Option<double> Dropout { get; } = new("--dropout")
    {
        Description = "Dropout in residual blocks.", DefaultValueFactory = _ => Defaults.Net.Dropout,
    };
    public Option<string> Prediction { get; } = new("--prediction")
    {
        Description = "epsilon, v_prediction or sample.", DefaultValueFactory = _ => Defaults.Diffusion.PredictionType,
    };
    public Option<string> Schedule { get; } = new("--schedule")
    {
        Description = "Beta schedule: linear, scaled_linear, cosine, quadratic, sigmoid.",
        DefaultValueFactory = _ => Defaults.Diffusion.BetaSchedule,
    };
    public Option<bool> ZeroTerminalSnr { get; } = new("--zero-terminal-snr")
    {
        Description = "Rescale the betas to zero terminal SNR (Lin et al. 2023; use with --prediction v_prediction).",
    };
    public Option<double> TimeLimit { get; } = new("--time-limit")
    {
        Description = "Stop after this many minutes of training (checkpointing there; 0 = no limit), e.g. to compare "
            + "recipes at equal wall time.",
        DefaultValueFactory = _ => 0,
    };
    public Option<int> Timesteps { get; } = new("--timesteps")
    {
        Description = "Training timesteps T.", DefaultValueFactory = _ => Defaults.Diffusion.NumTrainTimesteps,
    };
    public Option<string> Weighting { get; } = new("--weighting")
    {
        Description = "Loss weighting: simple, snr (= sgm, σ²-weighted score matching), min-snr or vlb (the " +
            "variational bound's own per-t weights).",
        DefaultValueFactory = _ => Defaults.Weighting.Name(),
    };
    public Option<double> MinSnrGamma { get; } = new("--min-snr-gamma")
    {
        Description = "γ of min-snr.", DefaultValueFactory = _ => Defaults.MinSnrGamma,
    };
    public Option<double> LabelDropout { get; } = new("--label-dropout")
    {
        Description = "Null-label probability (classifier-free guidance).",
        DefaultValueFactory = _ => Defaults.LabelDropout,
    };
    public Option<bool> Unconditional { get; } = new("--unconditional") { Description = "Ignore the data's labels." };
    public Option<double> Ema { get; } = new("--ema")
    {
        Description = "EMA decay.", DefaultValueFactory = _ => Defaults.EmaDecay,
    };
    public Option<double> GradClip { get; } = new("--grad-clip")
    {
        Description = "Gradient-norm clip (0 = off).", DefaultValueFactory = _ => Defaults.GradClip,
    };
    public Option<ulong> Seed { get; } = new("--seed")
    {
        Description = "Seed of every random draw.", DefaultValueFactory = _ => Defaults.Seed,
    };
    public Option<string> Device { get; } = new("--device")
    {
        Description = "cpu or cuda[:N].", DefaultValueFactory = _ => Defaults.Device,
    };
    public Option<int> Threads { get; } = new("--threads")
    {
        Description = "libtorch intra-op threads (0 = one per logical core).",
        DefaultValueFactory = _ => 0,
    };
    public Option<int> Limit { get; } = new("--limit")
    {
        Description = "Use only the first N images.", DefaultValueFactory = _ => Defaults.Limit,
    };
    public Option<bool> Flip { get; } = new("--flip")
    {
        Description = "Random horizontal flips, for mirror-symmetric data (not Fashion-MNIST, whose shoes all face "
            + "one way); --flip false turns them off on --resume.",
    };
    public Option<int> CheckpointEvery { get; } = new("--checkpoint-every")
    {
        DefaultValueFactory = _ => Defaults.CheckpointEvery,
    };
    public Option<int> SampleEvery { get; } = new("--sample-every")
    {
        Description = "Sample grid through the runtime every N steps (0 = never).",
        DefaultValueFactory = _ => Defaults.SampleEvery,
    };
    public Option<string> Precision { get; } = new("--precision")
    {
        Description = "fp32, or bf16: mixed precision (bfloat16 activations, float32 weights, optimizer and "
            + "checkpoint), ≈ 1.5× faster on CPUs with AVX512-BF16 or AMX, slower on others.",
        DefaultValueFactory = _ => Defaults.Precision.Name(),
    };
    public Option<bool> Resume { get; } = new("--resume")
    {
        Description = "Continue the run in --out with its saved config; --steps, --decay-steps, --lr, --ema, "
            + "--dropout, --precision and --flip may change it from here on.",
    };
    public Option<int> Processes { get; } = new("--processes")
    {
        Description = "Data-parallel processes on this machine, started through mpirun (--batch stays the global "
            + "batch); for several machines run mpirun yourself.",
        DefaultValueFactory = _ => 1,
    };

    /// <summary>Every option, in the order --help lists them.</summary>
    public IEnumerable<Option> All =>
    [
        Data, Size, Out, Steps, Batch, LearningRate, Warmup, Channels, Mults, ResBlocks, Attention, Dropout, Prediction,
        Schedule, Timesteps, Weighting, MinSnrGamma, LabelDropout, Unconditional, Ema, GradClip, Seed, Device, Threads,
        Limit, Flip, CheckpointEvery, SampleEvery, Resume, Processes, ZeroTerminalSnr, TimeLimit, DecaySteps,
        Precision, ScaleShift, LearnSigma,
    ];

    /// <summary>The options a resumed run takes (the rest of its config is the saved one).</summary>
    public IReadOnlyList<Option> ApplyOnResume =>
        [Steps, DecaySteps, LearningRate, Ema, Dropout, Precision, Flip, Threads, TimeLimit, Processes];

    /// <summary>The config of a new run.</summary>
    public TrainConfig Config(ParseResult p) => new()
    {
        Data = p.GetValue(Data)!,
        ImageSize = p.GetValue(Size),
        Limit = p.GetValue(Limit),
        Steps = p.GetValue(Steps),
        Batch = p.GetValue(Batch),
        LearningRate = p.GetValue(LearningRate),
        WarmupSteps = p.GetValue(Warmup),
        DecaySteps = p.GetValue(DecaySteps),
        Net = new UNetConfig
        {
            BaseChannels = p.GetValue(Channels),
            ChannelMults = Ints(p.GetValue(Mults)!, Mults.Name),
            ResBlocks = p.GetValue(ResBlocks),
            AttentionResolutions = Ints(p.GetValue(Attention)!, Attention.Name),
            Dropout = p.GetValue(Dropout),
            ScaleShift = p.GetValue(ScaleShift),
            LearnSigma = p.GetValue(LearnSigma),
        },
        Conditional = !p.GetValue(Unconditional),
        Diffusion = new DiffusionConfig
        {
            PredictionType = p.GetValue(Prediction)!,
            BetaSchedule = p.GetValue(Schedule)!,
            NumTrainTimesteps = p.GetValue(Timesteps),
            RescaleBetasZeroSnr = p.GetValue(ZeroTerminalSnr),
        },
        Weighting = LossWeightings.Parse(p.GetValue(Weighting)!),
        MinSnrGamma = p.GetValue(MinSnrGamma),
        LabelDropout = p.GetValue(LabelDropout),
        EmaDecay = p.GetValue(Ema),
        GradClip = p.GetValue(GradClip),
        Seed = p.GetValue(Seed),
        Device = p.GetValue(Device)!,
        Precision = PrecisionNames.Parse(p.GetValue(Precision)!),
        Flip = p.GetValue(Flip),
        CheckpointEvery = p.GetValue(CheckpointEvery),
        SampleEvery = p.GetValue(SampleEvery),
    };

    /// <summary>What a resumed run changes: the options of <see cref="ApplyOnResume"/> that were given.</summary>
    public ResumeOptions Changes(ParseResult p)
    {
        T? Given<T>(Option<T> option) where T : struct =>
            p.GetResult(option) is { Implicit: false } ? p.GetValue(option) : null;
        return new ResumeOptions
        {
            Steps = Given(Steps), DecaySteps = Given(DecaySteps), LearningRate = Given(LearningRate),
            EmaDecay = Given(Ema), Dropout = Given(Dropout), Flip = Given(Flip),
            Precision = p.GetResult(Precision) is { Implicit: false }
                ? PrecisionNames.Parse(p.GetValue(Precision)!) : null,
        };
    }

    /// <summary>The options given that a resumed run does not take (its saved config wins), by name.</summary>
    public IReadOnlyList<string> IgnoredOnResume(ParseResult p) =>
        All.Where(o => p.GetResult(o) is { Implicit: false } && o != Out && o != Resume && !ApplyOnResume.Contains(o))
            .Select(o => o.Name).ToList();

    private static int[] Ints(string text, string option)
    {
        try
        {
            return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(int.Parse).ToArray();
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new DiffusionArgumentException(option, $"'{text}': expected integers separated by commas.");
        }
    }
}
