using System.CommandLine;
using System.Diagnostics;
using Diffusion.Runtime;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Distributed;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Training;
using Spectre.Console;

namespace Diffusion.Trainer.Commands;

/// <summary>
/// <c>train</c>: trains a UNet, checkpointing and sampling as it goes; <c>--resume</c> continues a run folder.
/// </summary>
public static class TrainCommand
{
    /// <summary>The defaults of every option: those of the config records, the one place they are written.</summary>
    private static readonly TrainConfig Defaults = new();

    /// <summary>The trainer library's parameters (config properties) as this command's flags.</summary>
    public static IReadOnlyDictionary<string, string> Flags { get; } = new Dictionary<string, string>
    {
        [nameof(TrainConfig.Data)] = "--data", [nameof(TrainConfig.Steps)] = "--steps", [nameof(TrainConfig.Batch)] = "--batch",
        [nameof(TrainConfig.LearningRate)] = "--lr", [nameof(TrainConfig.EmaDecay)] = "--ema",
        [nameof(UNetConfig.Dropout)] = "--dropout", [nameof(TrainConfig.LabelDropout)] = "--label-dropout",
        [nameof(TrainConfig.CheckpointEvery)] = "--checkpoint-every", [nameof(TrainConfig.Precision)] = "--precision",
        [nameof(TrainConfig.DecaySteps)] = "--decay-steps", [nameof(TrainConfig.Device)] = "--device", ["Threads"] = "--threads",
        [nameof(UNetConfig.ChannelMults)] = "--mults", [nameof(UNetConfig.BaseChannels)] = "--channels",
        [nameof(TrainConfig.Weighting)] = "--weighting", ["Checkpoint"] = "--checkpoint",
    };

    /// <summary>Builds the command.</summary>
    public static Command Create(TextWriter output, TextWriter error)
    {
        var data = new Option<string>("--data") {
            Description = "fashion-mnist, fashion-mnist-test, an IDX images file, a CIFAR-10 folder/file or a folder " +
                "of PNGs.", DefaultValueFactory = _ => Defaults.Data };
        var outDir = new Option<string>("--out") {
            Description = "Run folder: checkpoint.pt, loss.csv, model.onnx, sample grids.", Required = true };
        var steps = new Option<int>("--steps") {
            DefaultValueFactory = _ => Defaults.Steps, Description = "Optimizer steps in all." };
        var batch = new Option<int>("--batch") {
            DefaultValueFactory = _ => Defaults.Batch, Description = "Images per step." };
        var lr = new Option<double>("--lr") {
            DefaultValueFactory = _ => Defaults.LearningRate, Description = "Peak learning rate (AdamW)." };
        var warmup = new Option<int>("--warmup") {
            DefaultValueFactory = _ => Defaults.WarmupSteps, Description = "Linear learning-rate warm-up steps." };
        var decay = new Option<int>("--decay-steps") {
            DefaultValueFactory = _ => Defaults.DecaySteps,
                Description = "Linear learning-rate cool-down to zero over the last N of --steps (0 = constant to " +
                    "the end); applies on --resume too, to end an open-ended run." };
        var channels = new Option<int>("--channels") {
            DefaultValueFactory = _ => Defaults.Net.BaseChannels, Description = "Base channels." };
        var mults = new Option<string>("--mults") {
            DefaultValueFactory = _ => string.Join(",", Defaults.Net.ChannelMults),
                Description = "Channel multipliers per level." };
        var resBlocks = new Option<int>("--res-blocks") {
            DefaultValueFactory = _ => Defaults.Net.ResBlocks, Description = "Residual blocks per level." };
        var attention = new Option<string>("--attention") {
            DefaultValueFactory = _ => string.Join(",", Defaults.Net.AttentionResolutions),
                Description = "Resolutions with self-attention (comma-separated; empty for none)." };
        var scaleShift = new Option<bool>("--scale-shift") {
            Description = "Condition each residual block by scaling and shifting its second norm with the time/class " +
                "embedding (AdaGN, Dhariwal & Nichol 2021) instead of adding it." };
        var dropout = new Option<double>("--dropout") {
            DefaultValueFactory = _ => Defaults.Net.Dropout, Description = "Dropout in residual blocks." };
        var prediction = new Option<string>("--prediction") {
            DefaultValueFactory = _ => Defaults.Diffusion.PredictionType,
                Description = "epsilon, v_prediction or sample." };
        var schedule = new Option<string>("--schedule") {
            DefaultValueFactory = _ => Defaults.Diffusion.BetaSchedule,
                Description = "Beta schedule: linear, scaled_linear, cosine, quadratic, sigmoid." };
        var zeroSnr = new Option<bool>("--zero-terminal-snr") {
            Description = "Rescale the betas to zero terminal SNR (Lin et al. 2023; use with --prediction " +
                "v_prediction)." };
        var timeLimit = new Option<double>("--time-limit") {
            DefaultValueFactory = _ => 0,
                Description = "Stop after this many minutes of training (checkpointing there; 0 = no limit), e.g. to " +
                    "compare recipes at equal wall time." };
        var timesteps = new Option<int>("--timesteps") {
            DefaultValueFactory = _ => Defaults.Diffusion.NumTrainTimesteps, Description = "Training timesteps T." };
        var weighting = new Option<string>("--weighting") {
            DefaultValueFactory = _ => Defaults.Weighting.Name(),
                Description = "Loss weighting: simple, snr or min-snr." };
        var gamma = new Option<double>("--min-snr-gamma") {
            DefaultValueFactory = _ => Defaults.MinSnrGamma, Description = "γ of min-snr." };
        var labelDropout = new Option<double>("--label-dropout") {
            DefaultValueFactory = _ => Defaults.LabelDropout,
                Description = "Null-label probability (classifier-free guidance)." };
        var unconditional = new Option<bool>("--unconditional") { Description = "Ignore the data's labels." };
        var ema = new Option<double>("--ema") {
            DefaultValueFactory = _ => Defaults.EmaDecay, Description = "EMA decay." };
        var clip = new Option<double>("--grad-clip") {
            DefaultValueFactory = _ => Defaults.GradClip, Description = "Gradient-norm clip (0 = off)." };
        var seed = new Option<ulong>("--seed") {
            DefaultValueFactory = _ => Defaults.Seed, Description = "Seed of every random draw." };
        var device = new Option<string>("--device") {
            DefaultValueFactory = _ => Defaults.Device, Description = "cpu or cuda[:N]." };
        var threads = new Option<int>("--threads") {
            DefaultValueFactory = _ => 0, Description = "libtorch intra-op threads (0 = one per logical core)." };
        var limit = new Option<int>("--limit") {
            DefaultValueFactory = _ => Defaults.Limit, Description = "Use only the first N images." };
        var flip = new Option<bool>("--flip") {
            Description = "Random horizontal flips, for mirror-symmetric data (not Fashion-MNIST, whose shoes all " +
                "face one way); --flip false turns them off on --resume." };
        var checkpointEvery = new Option<int>("--checkpoint-every") {
            DefaultValueFactory = _ => Defaults.CheckpointEvery };
        var sampleEvery = new Option<int>("--sample-every") {
            DefaultValueFactory = _ => Defaults.SampleEvery,
                Description = "Sample grid through the runtime every N steps (0 = never)." };
        var precision = new Option<string>("--precision") {
            DefaultValueFactory = _ => Defaults.Precision.Name(),
                Description = "fp32, or bf16: mixed precision (bfloat16 activations, float32 weights, optimizer and " +
                    "checkpoint), ≈ 1.5× faster on CPUs with AVX512-BF16 or AMX, slower on others." };
        var resume = new Option<bool>("--resume") {
            Description = "Continue the run in --out with its saved config; --steps, --decay-steps, --lr, --ema, " +
                "--dropout, --precision and --flip may change it from here on." };
        var processes = new Option<int>("--processes") {
            DefaultValueFactory = _ => 1,
                Description = "Data-parallel processes on this machine, started through mpirun (--batch stays the " +
                    "global batch); for several machines run mpirun yourself." };
        var command = new Command("train", "Train a diffusion UNet.")
        {
            data, outDir, steps, batch, lr, warmup, channels, mults, resBlocks, attention, dropout, prediction,
                schedule, timesteps,
            weighting, gamma, labelDropout, unconditional, ema, clip, seed, device, threads, limit, flip,
                checkpointEvery, sampleEvery, resume, processes,
            zeroSnr, timeLimit, decay, precision, scaleShift,
        };
        command.SetAction((p, cancellation) => Program.Guard(error, async () =>
        {
            int n = p.GetValue(processes);
            if (n is < 1 or > 1024) throw new DiffusionArgumentException("--processes", $"expected 1…1024, got {n}.");
            if (n > 1 && !Mpi.LaunchedByMpirun)
                return await Launcher.RunUnderMpirun(n, p.Tokens.Select(t => t.Value).ToArray(), output, error,
                    cancellation);
            using ICommunicator world = Mpi.LaunchedByMpirun ? Mpi.Initialize() : new SingleProcess();
            try
            {
                return await Train(p, world, world.Rank == 0 ? output : TextWriter.Null, cancellation);
            }
            catch (Exception e) when (world.Size > 1 && e is not OperationCanceledException)
            {
                // One rank failing alone would leave the others waiting in their next allreduce: end them all.
                await error.WriteLineAsync($"error on rank {world.Rank} " +
                    $"of {world.Size}: {e.Message.ReplaceLineEndings(" ")}");
                ((Mpi)world).Abort(1);
                throw;
            }
        }));
        return command;

        // Rank 0 speaks for the run; the others write only their errors.
        async Task<int> Train(ParseResult p, ICommunicator world, TextWriter output, CancellationToken cancellation)
        {
            double minutes = p.GetValue(timeLimit);
            if (!(minutes >= 0) || minutes > 1e6)
                throw new DiffusionArgumentException("--time-limit",
                    $"expected a number of minutes ≥ 0, got {minutes}.");
            int torchThreads = TorchSetup.SetThreads(p.GetValue(threads) is var t and not 0 ? t
                : Launcher.ThreadsPerRank());
            var folder = p.GetValue(outDir)!;
            TrainingRun run;
            if (p.GetValue(resume))
            {
                if (!File.Exists(TrainingRun.CheckpointPath(folder)))
                    throw new DiffusionException("--resume", $"no checkpoint in '{folder}'.");
                // A resumed run keeps its saved configuration; say which of the options given here it does not take.
                string[] applies = ["--steps", "--decay-steps", "--lr", "--ema", "--dropout", "--precision", "--flip",
                    "--threads", "--time-limit", "--processes"];
                var ignored = command.Options.Where(o => p.GetResult(o) is { Implicit: false }
                    && o.Name is not ("--out" or "--resume") && !applies.Contains(o.Name))
                    .Select(o => o.Name).ToList();
                if (ignored.Count > 0)
                    await error.WriteLineAsync($"warning: --resume continues the run saved in '{folder}' with its " +
                        $"own settings; ignoring {string.Join(", ", ignored)} " +
                        $"(only {string.Join(", ", applies[..^1])} and {applies[^1]} apply).");
                T? Given<T>(Option<T> option) where T : struct => p.GetResult(option) is { Implicit: false }
                    ? p.GetValue(option) : null;
                var changes = new ResumeOptions
                {
                    Steps = Given(steps), DecaySteps = Given(decay), LearningRate = Given(lr), EmaDecay = Given(ema),
                        Dropout = Given(dropout),
                    Precision = p.GetResult(precision) is { Implicit: false }
                        ? PrecisionNames.Parse(p.GetValue(precision)!) : null,
                    Flip = Given(flip),
                };
                run = TrainingRun.Resume(folder, changes, world: world);
                if (changes.ToString() is { Length: > 0 } changed)
                    await output.WriteLineAsync($"resuming '{folder}' at step {run.Step} with {changed}");
            }
            else
            {
                var config = new TrainConfig
                {
                    Data = p.GetValue(data)!,
                    Limit = p.GetValue(limit),
                    Steps = p.GetValue(steps),
                    Batch = p.GetValue(batch),
                    LearningRate = p.GetValue(lr),
                    WarmupSteps = p.GetValue(warmup),
                    DecaySteps = p.GetValue(decay),
                    Net = new UNetConfig
                    {
                        BaseChannels = p.GetValue(channels),
                        ChannelMults = Ints(p.GetValue(mults)!, "--mults"),
                        ResBlocks = p.GetValue(resBlocks),
                        AttentionResolutions = Ints(p.GetValue(attention)!, "--attention"),
                        Dropout = p.GetValue(dropout),
                        ScaleShift = p.GetValue(scaleShift),
                    },
                    Conditional = !p.GetValue(unconditional),
                    Diffusion = new DiffusionConfig
                    {
                        PredictionType = p.GetValue(prediction)!,
                        BetaSchedule = p.GetValue(schedule)!,
                        NumTrainTimesteps = p.GetValue(timesteps),
                        RescaleBetasZeroSnr = p.GetValue(zeroSnr),
                    },
                    Weighting = LossWeightings.Parse(p.GetValue(weighting)!),
                    MinSnrGamma = p.GetValue(gamma),
                    LabelDropout = p.GetValue(labelDropout),
                    EmaDecay = p.GetValue(ema),
                    GradClip = p.GetValue(clip),
                    Seed = p.GetValue(seed),
                    Device = p.GetValue(device)!,
                    Precision = PrecisionNames.Parse(p.GetValue(precision)!),
                    Flip = p.GetValue(flip),
                    CheckpointEvery = p.GetValue(checkpointEvery),
                    SampleEvery = p.GetValue(sampleEvery),
                };
                if (world.Rank == 0 && File.Exists(TrainingRun.CheckpointPath(folder)))
                    throw new DiffusionArgumentException("--out",
                        $"'{folder}' already holds a run (checkpoint.pt); pass --resume to continue it or choose " +
                            $"another --out.");
                run = TrainingRun.Start(config, folder, world: world);
            }
            using (run)
            {
                if (world.Rank == 0 && run.Config.Precision == Precision.BFloat16
                    && TorchSetup.ParseDevice(run.Config.Device).type == TorchSharp.DeviceType.CPU
                        && !TorchSetup.CpuHasBFloat16())
                    await error.WriteLineAsync("warning: --precision bf16 on a CPU without AVX512-BF16 or AMX: " +
                        "libtorch emulates bfloat16 here, which is usually slower than fp32.");
                await output.WriteLineAsync($"training {run.Net.parameters().Sum(p => p.numel()):N0} parameters " +
                    $"on {run.Config.Data} " +
                    $"({run.Config.Net.ImageSize}×{run.Config.Net.ImageSize}×{run.Config.Net.InChannels}, {(run.Config.Net.NumClasses > 0 ? $"{run.Config.Net.NumClasses} classes" : "unconditional")}), step {run.Step} → {run.Config.Steps}, {TorchSetup.Describe()}, {torchThreads} threads, {run.Config.Precision.Name()}" +
                    (world.Size > 1
                        ? $" × {world.Size} ranks (MPI; batch {run.Config.Batch} split across " +
                            $"them, {run.Averager.BytesPerStep / 1e6:0.#} MB allreduced per step)" : ""));
                var watch = Stopwatch.StartNew();
                int firstStep = run.Step;
                try
                {
                    run.TimeLimit = minutes > 0 ? TimeSpan.FromMinutes(minutes) : null;
                    await Task.Run(() => RunWithProgress(run, output, cancellation), cancellation);
                }
                catch (OperationCanceledException)
                {
                    var saved = File.Exists(TrainingRun.CheckpointPath(folder))
                        ? Checkpoint.ReadInfo(TrainingRun.CheckpointPath(folder)).Step : (int?)null;
                    await error.WriteLineAsync(saved is int at
                        ? $"cancelled at step {run.Step}; the checkpoint of step {at} is intact: continue with " +
                            $"--out {folder} --resume."
                        : $"cancelled at step {run.Step}, before the first checkpoint; nothing was saved.");
                    return 130;
                }
                var last = run.Losses.Count > 0 ? run.Losses[^1].Loss : double.NaN;
                double seconds = watch.Elapsed.TotalSeconds, steps = run.Step - firstStep;
                await output.WriteLineAsync($"done: step {run.Step}, last loss {last:0.0000}, {seconds / 60:0.0} min " +
                    $"({steps * run.Config.Batch / seconds:0.0} images/s); " +
                        $"checkpoint {TrainingRun.CheckpointPath(folder)}" +
                    (world.Size > 1
                        ? $"; allreduce {1e3 * run.Averager.AllreduceTime.TotalSeconds / Math.Max(steps, 1):0.0} ms " +
                            $"per step ({run.Averager.AllreduceTime.TotalSeconds / seconds:P1} of the time)" : ""));
            }
            return 0;
        }
    }

    private static void RunWithProgress(TrainingRun run, TextWriter output, CancellationToken cancellation)
    {
        bool interactive = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        if (!interactive)
        {
            var every = Math.Max(1, run.Config.Steps / 50);
            run.Run(new SyncProgress<StepReport>(r =>
            {
                if (r.Step % every == 0 || r.Step == r.Steps)
                    output.WriteLine($"step {r.Step}/{r.Steps} loss {r.Loss:0.0000} " +
                        $"lr {r.LearningRate:0.####e0} {r.ImagesPerSecond:0.0} img/s");
            }), cancellation);
            return;
        }
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: run.Config.Steps);
                task.Value = run.Step;
                double smoothed = double.NaN;
                run.Run(new SyncProgress<StepReport>(r =>
                {
                    smoothed = double.IsNaN(smoothed) ? r.Loss : 0.98 * smoothed + 0.02 * r.Loss;
                    task.Description = $"loss {smoothed:0.0000}  {r.ImagesPerSecond:0} img/s";
                    task.Value = r.Step;
                }), cancellation);
            });
    }

    private static int[] Ints(string text, string option)
    {
        try
        {
            return text.Split(',',
                StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        }
        catch (FormatException)
        {
            throw new DiffusionArgumentException(option, $"'{text}': expected integers separated by commas.");
        }
    }

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
