using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Training;
using TorchSharp;

namespace Diffusion.Trainer.Commands;

/// <summary>
/// <c>bench-train</c>: training throughput of the reference config (--channels 32 --mults 1,2,2 --res-blocks 2
/// --attention 7 --batch 64 on 28×28×1): images/s over timed steps after warm-up, ms per step, peak resident memory.
/// With <c>--compare</c>, the same measurement of this trainer, of the PyTorch-eager twin
/// (trainer/bench/pytorch_reference.py) and, with <c>--previous</c>, of an earlier trainer build, each in a process
/// of its own, back to back, for <c>--rounds</c> rounds; the table gives medians and ratios to PyTorch (float32).
/// <c>--precision bf16</c> adds this trainer in mixed precision and the twin under torch.autocast(bfloat16).
/// <c>--kernels</c> runs the measurement again under oneDNN's verbose mode and prints which oneDNN kernels a step ran
/// (<see cref="OneDnnTrace"/>); <c>ONEDNN_MAX_CPU_ISA</c> in the environment caps them, as for any oneDNN program.
/// </summary>
public static partial class BenchTrainCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(TextWriter output, TextWriter error)
    {
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 20, Description = "Timed steps." };
        var warmup = new Option<int>("--warmup")
        {
            DefaultValueFactory = _ => 3, Description = "Untimed warm-up steps.",
        };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 64 };
        var threads = new Option<int>("--threads")
        {
            DefaultValueFactory = _ => 0, Description = "Intra-op threads (0 = one per logical core).",
        };
        var compare = new Option<bool>("--compare")
        {
            Description = "Also measure the PyTorch-eager twin (and --previous), each in its own " +
                "process, and print a table.",
        };
        var python = new Option<string>("--python")
        {
            DefaultValueFactory = _ => "/usr/bin/python3",
            Description = "Python with torch for the twin (Debian's python3-torch).",
        };
        var previous = new Option<string?>("--previous")
        {
            Description = "The trainer dll (diffusion-trainer.dll before the TorchSharp trainer) of an earlier build " +
                "to measure too (see trainer/bench/build-previous.sh).",
        };
        var rounds = new Option<int>("--rounds")
        {
            DefaultValueFactory = _ => 3, Description = "With --compare: rounds of all contenders, back to back.",
        };
        var profile = new Option<bool>("--profile")
        {
            Description = "Also print the mean milliseconds per step of each phase (data, forward, " +
                "backward, clip, AdamW, EMA).",
        };
        var precision = new Option<string>("--precision")
        {
            DefaultValueFactory = _ => "fp32",
            Description = "fp32 or bf16 (mixed precision, as train --precision); with --compare, bf16 adds bf16 " +
                    "rows (this trainer, and the twin under torch.autocast) beside the fp32 ones.",
        };
        var kernels = new Option<bool>("--kernels")
        {
            Description = "Also run the steps again in a child process under ONEDNN_VERBOSE=profile_exec and print " +
                "which oneDNN kernels (implementation, instruction set, data types, layouts) one step ran and their " +
                "share of it.",
        };
        var command = new Command("bench-train", "Measure training throughput of the reference UNet.")
        {
            steps, warmup, batch, threads, compare, python, previous, rounds, profile, precision, kernels,
        };
        command.SetAction((p, cancellation) => Program.Guard(error, async () =>
        {
            int s = p.GetValue(steps), w = p.GetValue(warmup), b = p.GetValue(batch), t = p.GetValue(threads);
            if (s <= 0 || w < 0 || b <= 0)
                throw new DiffusionArgumentException(s <= 0 ? "--steps" : w < 0 ? "--warmup" : "--batch",
                    $"--steps must be positive, --warmup non-negative and --batch positive (got {s}, {w}, {b}).");
            var arithmetic = PrecisionNames.Parse(p.GetValue(precision)!);
            if (TorchSetup.PrecisionWarning(arithmetic, torch.CPU) is { } slow) await error.WriteLineAsync(slow);
            if (!p.GetValue(compare))
            {
                await output.WriteAsync(MeasureThisTrainer(s, w, b, t, arithmetic, p.GetValue(profile), cancellation));
                if (p.GetValue(kernels))
                    await output.WriteAsync(await TraceKernels(s, w, b, t, arithmetic, cancellation));
                return 0;
            }
            if (p.GetValue(kernels))
                throw new DiffusionArgumentException("--kernels", "traces one configuration: leave out --compare.");
            var report = await Compare(s, w, b, t == 0 ? Environment.ProcessorCount : t, arithmetic, p.GetValue(rounds),
                p.GetValue(python)!, p.GetValue(previous), output, cancellation);
            await output.WriteAsync(report);
            return 0;
        }));
        return command;
    }

    /// <summary>Times this trainer's steps in this process; the text has the lines <see cref="Parse"/> reads.</summary>
    private static string MeasureThisTrainer(int steps, int warmup, int batch, int threads, Precision precision,
        bool profile, CancellationToken cancellation)
    {
        int torchThreads = TorchSetup.SetThreads(threads);
        var folder = Path.Combine(Path.GetTempPath(), $"bench-train-{Environment.ProcessId}");
        var config = new TrainConfig
        {
            Data = "fashion-mnist", Limit = 4096, Batch = batch, Steps = int.MaxValue, SampleEvery = 0,
            CheckpointEvery = int.MaxValue, Precision = precision,
            Net = new UNetConfig
            {
                BaseChannels = 32, ChannelMults = [1, 2, 2], ResBlocks = 2, AttentionResolutions = [7],
            },
        };
        using var run = TrainingRun.Start(config, folder);
        var times = new List<double>();
        try
        {
            for (int i = 0; i < warmup; i++) run.TrainStep();
            if (profile) run.Profile = new StepProfile();
            for (int i = 0; i < steps; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                var watch = Stopwatch.StartNew();
                run.TrainStep();
                times.Add(watch.Elapsed.TotalMilliseconds);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true); // nothing is written there; the run folder only has to exist
        }
        times.Sort();
        double median = times[times.Count / 2], mean = times.Average();
        return $"reference UNet ({run.Net.parameters().Sum(q => q.numel()):N0} parameters), batch {config.Batch}, " +
               $"28×28×1, {TorchSetup.Describe()}, {torchThreads} threads, {precision.Name()}:\n " +
                   $" {config.Batch / (median / 1000):0.0} images/s (median step {median:0.0} ms, mean {mean:0.0} ms " +
               $"over {times.Count} steps)\n  peak resident memory {ProcessMemory.PeakResidentMiB():0} MiB\n" +
               (run.Profile is { } phases
                   ? $"  per step: {string.Join(", ", phases.MeanPerStep().Select(x => $"{x.Phase} {x.Milliseconds:0.0} ms"))}\n" : "");
    }

    private sealed record Contender(string Name, string File, IReadOnlyList<string> Arguments,
        IReadOnlyDictionary<string, string>? Environment = null);

    private readonly record struct Measurement(double ImagesPerSecond, double MedianMs, double MeanMs,
        double PeakMiB);

    /// <summary>
    /// This trainer's steps once more in a child process under <c>ONEDNN_VERBOSE=profile_exec</c>: a table of the
    /// oneDNN kernels of one timed step, their milliseconds and share of that run's mean step, and what ran outside
    /// oneDNN.
    /// </summary>
    private static async Task<string> TraceKernels(int steps, int warmup, int batch, int threads, Precision precision,
        CancellationToken cancellation)
    {
        var traced = new Contender("this trainer under ONEDNN_VERBOSE", "dotnet",
            [typeof(Program).Assembly.Location, "bench-train", "--steps", $"{steps}", "--warmup", $"{warmup}",
                "--batch", $"{batch}", "--threads", $"{threads}", "--precision", precision.Name()],
            new Dictionary<string, string> { ["ONEDNN_VERBOSE"] = "profile_exec" });
        var (text, measured) = await RunOne(traced, cancellation);
        var trace = OneDnnTrace.Parse(text, warmup + steps, steps);
        double step = measured.MeanMs;
        var report = new System.Text.StringBuilder();
        var window = $"ONEDNN_VERBOSE=profile_exec, the last {steps} of {warmup + steps} steps, whose mean step " +
            string.Create(CultureInfo.InvariantCulture, $"took {step:0.0} ms");
        if (trace.Kernels.Count == 0)
            return $"\noneDNN in one step: none of its primitives ran ({window}{CapNote()}): the whole step is " +
                "libtorch's own kernels (or this libtorch's oneDNN was built without its verbose mode).\n";
        report.AppendLine(CultureInfo.InvariantCulture,
            $"\noneDNN in one step ({(trace.Version.Length > 0 ? trace.Version : "oneDNN")} on " +
            $"{(trace.Isa.Length > 0 ? trace.Isa : "an ISA it did not name")}{CapNote()}; {window}):");
        report.AppendLine();
        report.AppendLine("| primitive | kernel | pass | data | layouts | calls | ms | share of step |");
        report.AppendLine("| --- | --- | --- | --- | --- | ---: | ---: | ---: |");
        void Row(string columns, double calls, double ms) => report.AppendLine(CultureInfo.InvariantCulture,
            $"| {columns} | {(calls > 0 ? calls.ToString("0.#", CultureInfo.InvariantCulture) : "")} | {ms:0.0} " +
            $"| {100 * ms / step:0.0} % |");
        // kinds under half a percent of the step each are summed into one row
        var minor = trace.Kernels.Where(k => k.MillisecondsPerStep < 0.005 * step).ToList();
        foreach (var k in trace.Kernels.Except(minor))
            Row($"{k.Key.Primitive} | {k.Key.Implementation} | {k.Key.Pass} | {k.Key.DataTypes} | {k.Key.Layouts}",
                k.CallsPerStep, k.MillisecondsPerStep);
        if (minor.Count > 0)
            Row($"{minor.Count} more kinds under 0.5 % each " +
                $"({string.Join(", ", minor.Select(k => k.Key.Primitive).Distinct())}) | | | |",
                minor.Sum(k => k.CallsPerStep), minor.Sum(k => k.MillisecondsPerStep));
        double inside = trace.MillisecondsPerStep;
        Row("all of oneDNN | | | |", trace.Kernels.Sum(k => k.CallsPerStep), inside);
        Row("outside oneDNN: libtorch's own kernels (norms, elementwise, dropout, optimizer), the C# side | | | |", 0,
            step - inside);
        report.AppendLine();
        report.AppendLine("by primitive: " + string.Join(", ", trace.Kernels.GroupBy(k => k.Key.Primitive)
            .Select(g => (g.Key, Ms: g.Sum(k => k.MillisecondsPerStep))).OrderByDescending(g => g.Ms)
            .Select(g => string.Create(CultureInfo.InvariantCulture,
                $"{g.Key} {g.Ms:0.0} ms ({100 * g.Ms / step:0.0} %)"))));
        return report.ToString();

        static string CapNote() => Environment.GetEnvironmentVariable("ONEDNN_MAX_CPU_ISA") is { Length: > 0 } cap
            ? $", capped by ONEDNN_MAX_CPU_ISA={cap}" : "";
    }

    private static async Task<string> Compare(int steps, int warmup, int batch, int threads, Precision precision,
        int rounds, string python, string? previous, TextWriter progress, CancellationToken cancellation)
    {
        if (rounds <= 0) throw new DiffusionArgumentException("--rounds", $"expected a positive number, got {rounds}.");
        string[] common = ["bench-train", "--steps", $"{steps}", "--warmup", $"{warmup}", "--batch", $"{batch}",
            "--threads", $"{threads}"];
        string[] twinCommon = ["--steps", $"{steps}", "--warmup", $"{warmup}", "--batch", $"{batch}", "--threads",
            $"{threads}"];
        var self = typeof(Program).Assembly.Location;
        var contenders = new List<Contender> { new("this trainer (TorchSharp)", "dotnet", [self, .. common]) };
        var twin = Path.Combine(AppContext.BaseDirectory, "bench", "pytorch_reference.py");
        if (!File.Exists(python))
            throw new FileNotFoundException($"--python '{python}' does not exist; install Debian's python3-torch " +
                $"(apt-get install python3-torch) for the PyTorch twin.", python);
        contenders.Add(new("PyTorch eager twin", python, [twin, .. twinCommon]));
        if (precision == Precision.BFloat16)
        {
            contenders.Add(new("this trainer (TorchSharp), bf16", "dotnet", [self, .. common, "--precision", "bf16"]));
            contenders.Add(new("PyTorch eager twin, bf16 autocast", python,
                [twin, .. twinCommon, "--precision", "bf16"]));
        }
        if (previous is not null)
        {
            if (!File.Exists(previous))
                throw new FileNotFoundException($"--previous '{previous}' does not exist; build it with " +
                    $"trainer/bench/build-previous.sh.", previous);
            contenders.Add(new("previous trainer (libtorch shim)", "dotnet", [previous, .. common]));
        }
        var results = contenders.ToDictionary(c => c.Name, _ => new List<Measurement>());
        var banners = new Dictionary<string, string>();
        for (int round = 1; round <= rounds; round++)
            foreach (var c in contenders)
            {
                var (text, measurement) = await RunOne(c, cancellation);
                // the lines before the rate: the banner (the twin's first names the CPU and the BLAS torch reached)
                banners[c.Name] = string.Join("; ", text.Split('\n').Select(l => l.Trim())
                    .TakeWhile(l => !RateLine().IsMatch(l)).Where(l => l.Length > 0));
                if (banners[c.Name].Contains("REFERENCE BLAS", StringComparison.Ordinal))
                    throw new DiffusionException($"--python '{python}': torch runs on the reference BLAS " +
                        "(libblas3), not a fair baseline; install libopenblas0-pthread (./diffusion bench-train " +
                        "--compare installs it).");
                results[c.Name].Add(measurement);
                await progress.WriteLineAsync($"round {round}/{rounds}: {c.Name}: {measurement.ImagesPerSecond:0.0} " +
                    $"images/s, {measurement.PeakMiB:0} MiB");
            }
        var baseline = Median(results["PyTorch eager twin"].Select(m => m.ImagesPerSecond));
        var table = new System.Text.StringBuilder();
        table.AppendLine($"\nreference UNet, batch {batch}, 28×28×1, {threads} threads, median of {rounds} rounds " +
            $"of {steps} timed steps (after {warmup} warm-up), each contender in its own process:\n");
        table.AppendLine("| trainer | images/s | median step | peak RSS | images/s vs PyTorch |");
        table.AppendLine("| --- | --- | --- | --- | --- |");
        foreach (var c in contenders)
        {
            var m = results[c.Name];
            double rate = Median(m.Select(x => x.ImagesPerSecond));
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {c.Name} | {rate:0.0} | {Median(m.Select(x => x.MedianMs)):0} ms " +
                    $"| {Median(m.Select(x => x.PeakMiB)):0} MiB | {rate / baseline:0.00}× |");
        }
        table.AppendLine();
        foreach (var c in contenders) table.AppendLine($"{c.Name}: {banners[c.Name]}");
        return table.ToString();
    }

    private static async Task<(string Text, Measurement Result)> RunOne(Contender c, CancellationToken cancellation)
    {
        var start = new ProcessStartInfo(c.File)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in c.Arguments) start.ArgumentList.Add(a);
        foreach (var (name, value) in c.Environment ?? new Dictionary<string, string>())
            start.Environment[name] = value;
        using var process = Process.Start(start) ?? throw new DiffusionException($"could not start {c.File}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellation);
        var stderr = process.StandardError.ReadToEndAsync(cancellation);
        await process.WaitForExitAsync(cancellation);
        var text = await stdout;
        if (process.ExitCode != 0)
            throw new DiffusionException($"{c.Name} ({c.File} {string.Join(' ', c.Arguments)}) failed with exit " +
                $"code {process.ExitCode}: {(await stderr).Trim().Split('\n').LastOrDefault()}");
        return (text, Parse(c.Name, text));
    }

    /// <summary>
    /// Reads "N images/s (median step M ms[, mean A ms]" and "peak resident memory P MiB" from a bench-train report
    /// (the twin prints no mean: it is the median there).
    /// </summary>
    private static Measurement Parse(string name, string text)
    {
        var rate = RateLine().Match(text);
        var peak = PeakLine().Match(text);
        if (!rate.Success || !peak.Success)
            throw new DiffusionException($"{name} printed no images/s and peak memory lines: {text.Trim()}");
        double Number(Group g) => double.Parse(g.Value, CultureInfo.InvariantCulture);
        double median = Number(rate.Groups[2]);
        return new Measurement(Number(rate.Groups[1]), median,
            rate.Groups[3].Success ? Number(rate.Groups[3]) : median, Number(peak.Groups[1]));
    }

    [GeneratedRegex(@"([0-9.]+) images/s \(median step ([0-9.]+) ms(?:, mean ([0-9.]+) ms)?")]
    private static partial Regex RateLine();

    [GeneratedRegex(@"peak resident memory ([0-9.]+) MiB")]
    private static partial Regex PeakLine();

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
