using System.CommandLine;
using System.Diagnostics;
using Diffusion.Distributed;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Training;
using Spectre.Console;

namespace Diffusion.Trainer.Commands;

/// <summary>
/// <c>train</c>: trains a UNet, checkpointing and sampling as it goes; <c>--resume</c> continues a run folder.
/// </summary>
public static class TrainCommand
{
    /// <summary>The trainer library's parameters (config properties) as this command's flags.</summary>
    public static IReadOnlyDictionary<string, string> Flags { get; } = new Dictionary<string, string>
    {
        [nameof(TrainConfig.Data)] = "--data",
        [nameof(TrainConfig.ImageSize)] = "--size",
        [nameof(TrainConfig.Steps)] = "--steps",
        [nameof(TrainConfig.Batch)] = "--batch",
        [nameof(TrainConfig.MinSnrGamma)] = "--min-snr-gamma",
        [nameof(TrainConfig.LearningRate)] = "--lr",
        [nameof(TrainConfig.EmaDecay)] = "--ema",
        [nameof(UNetConfig.Dropout)] = "--dropout",
        [nameof(TrainConfig.LabelDropout)] = "--label-dropout",
        [nameof(TrainConfig.CheckpointEvery)] = "--checkpoint-every",
        [nameof(TrainConfig.Precision)] = "--precision",
        [nameof(TrainConfig.DecaySteps)] = "--decay-steps",
        [nameof(TrainConfig.Device)] = "--device",
        [nameof(TrainConfig.Weighting)] = "--weighting",
        [nameof(TrainConfig.Flip)] = "--flip",
        [nameof(UNetConfig.ChannelMults)] = "--mults",
        [nameof(UNetConfig.BaseChannels)] = "--channels",
        ["Threads"] = "--threads",
        ["Checkpoint"] = "--checkpoint",
    };

    /// <summary>Builds the command.</summary>
    public static Command Create(TextWriter output, TextWriter error)
    {
        var o = new TrainOptions();
        var command = new Command("train", "Train a diffusion UNet.");
        foreach (var option in o.All) command.Options.Add(option);
        command.SetAction((p, cancellation) => Program.Guard(error, async () =>
        {
            int n = p.GetValue(o.Processes);
            if (n is < 1 or > 1024) throw new DiffusionArgumentException("--processes", $"expected 1…1024, got {n}.");
            if (n > 1 && !Mpi.LaunchedByMpirun)
            {
                string[] tokens = [.. p.Tokens.Select(t => t.Value)];
                return await Launcher.RunUnderMpirun(n, tokens, output, error, cancellation);
            }
            using ICommunicator world = Mpi.LaunchedByMpirun ? Mpi.Initialize() : new SingleProcess();
            try
            {
                // Rank 0 speaks for the run; the others write only their errors.
                return await Train(o, p, world, world.Rank == 0 ? output : TextWriter.Null, error, cancellation);
            }
            catch (Exception e) when (world.Size > 1 && e is not OperationCanceledException)
            {
                // One rank failing alone would leave the others waiting in their next allreduce: end them all.
                var message = e.Message.ReplaceLineEndings(" ");
                await error.WriteLineAsync($"error on rank {world.Rank} of {world.Size}: {message}");
                ((Mpi)world).Abort(1);
                throw;
            }
        }));
        return command;
    }

    private static async Task<int> Train(TrainOptions o, ParseResult p, ICommunicator world, TextWriter output,
        TextWriter error, CancellationToken cancellation)
    {
        double minutes = p.GetValue(o.TimeLimit);
        if (!(minutes >= 0) || minutes > 1e6)
            throw new DiffusionArgumentException("--time-limit", $"expected a number of minutes ≥ 0, got {minutes}.");
        int threads = TorchSetup.SetThreads(p.GetValue(o.Threads) is var t and not 0 ? t : Launcher.ThreadsPerRank());
        var folder = p.GetValue(o.Out)!;
        using var run = p.GetValue(o.Resume)
            ? await Resume(o, p, folder, world, output, error)
            : Start(o.Config(p), folder, world);
        await Describe(run, world, threads, output, error);
        var watch = Stopwatch.StartNew();
        int firstStep = run.Step;
        try
        {
            run.TimeLimit = minutes > 0 ? TimeSpan.FromMinutes(minutes) : null;
            await Task.Run(() => RunWithProgress(run, output, cancellation), cancellation);
        }
        catch (OperationCanceledException)
        {
            var checkpoint = TrainingRun.CheckpointPath(folder);
            int? saved = File.Exists(checkpoint) ? Checkpoint.ReadInfo(checkpoint).Step : null;
            await error.WriteLineAsync(saved is int at
                ? $"cancelled at step {run.Step}; the checkpoint of step {at} is intact: continue "
                    + $"with --out {folder} --resume."
                : $"cancelled at step {run.Step}, before the first checkpoint; nothing was saved.");
            return ExitCodes.Cancelled;
        }
        var last = run.Losses.Count > 0 ? run.Losses[^1].Loss : double.NaN;
        double seconds = watch.Elapsed.TotalSeconds, steps = run.Step - firstStep;
        var allreduce = run.Averager.AllreduceTime.TotalSeconds;
        await output.WriteLineAsync($"done: step {run.Step}, last loss {last:0.0000}, {seconds / 60:0.0} min "
            + $"({steps * run.Config.Batch / seconds:0.0} images/s); checkpoint {TrainingRun.CheckpointPath(folder)}"
            + (world.Size > 1
                ? $"; allreduce {1e3 * allreduce / Math.Max(steps, 1):0.0} ms per step "
                    + $"({allreduce / seconds:P1} of the time)"
                : ""));
        return ExitCodes.Ok;
    }

    /// <summary>A new run in <paramref name="folder"/>, which must not hold one.</summary>
    private static TrainingRun Start(TrainConfig config, string folder, ICommunicator world)
    {
        if (world.Rank == 0 && File.Exists(TrainingRun.CheckpointPath(folder)))
            throw new DiffusionArgumentException("--out",
                $"'{folder}' already holds a run (checkpoint.pt); pass --resume to continue "
                    + $"it or choose another --out.");
        return TrainingRun.Start(config, folder, world: world);
    }

    /// <summary>
    /// The run saved in <paramref name="folder"/>, with the changes given; says which options it ignores.
    /// </summary>
    private static async Task<TrainingRun> Resume(TrainOptions o, ParseResult p, string folder, ICommunicator world,
        TextWriter output, TextWriter error)
    {
        if (!File.Exists(TrainingRun.CheckpointPath(folder)))
            throw new DiffusionException("--resume", $"no checkpoint in '{folder}'.");
        if (o.IgnoredOnResume(p) is { Count: > 0 } ignored)
        {
            var applies = o.ApplyOnResume.Select(a => a.Name).ToList();
            await error.WriteLineAsync($"warning: --resume continues the run saved in '{folder}' with its own "
                + $"settings; ignoring {string.Join(", ", ignored)} (only {string.Join(", ", applies[..^1])} and "
                + $"{applies[^1]} apply).");
        }
        var changes = o.Changes(p);
        var run = TrainingRun.Resume(folder, changes, world: world);
        if (changes.Changed().Any())
        {
            var changed = string.Join(" ", changes.Changed().Select(c => $"{Flags[c.Parameter]} {c.Value}"));
            await output.WriteLineAsync($"resuming '{folder}' at step {run.Step} with {changed}");
        }
        return run;
    }

    /// <summary>One line on what is trained where (and a warning where bf16 will be slow).</summary>
    private static async Task Describe(TrainingRun run, ICommunicator world, int threads, TextWriter output,
        TextWriter error)
    {
        var c = run.Config;
        if (world.Rank == 0 && TorchSetup.PrecisionWarning(c.Precision, TorchSetup.ParseDevice(c.Device)) is { } slow)
            await error.WriteLineAsync(slow);
        if (world.Rank == 0 && run.Data.Summary.Length > 0) await output.WriteLineAsync(run.Data.Summary);
        var classes = c.Net.NumClasses > 0 ? $"{c.Net.NumClasses} classes" : "unconditional";
        await output.WriteLineAsync($"training {run.Net.parameters().Sum(p => p.numel()):N0} parameters on {c.Data} "
            + $"({c.Net.ImageSize}×{c.Net.ImageSize}×{c.Net.InChannels}, {classes}), step {run.Step} → {c.Steps}, "
            + $"{TorchSetup.Describe()}, {threads} threads, {c.Precision.Name()}"
            + (world.Size > 1
                ? $" × {world.Size} ranks (MPI; batch {c.Batch} split across them, "
                    + $"{run.Averager.BytesPerStep / 1e6:0.#} MB allreduced per step)"
                : ""));
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
                    output.WriteLine($"step {r.Step}/{r.Steps} loss {r.Loss:0.0000} lr {r.LearningRate:0.####e0} "
                        + $"{r.ImagesPerSecond:0.0} img/s");
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

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
