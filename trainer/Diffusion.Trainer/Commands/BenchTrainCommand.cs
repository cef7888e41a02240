using System.CommandLine;
using System.Diagnostics;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Torch;
using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Commands;

/// <summary>
/// <c>bench-train</c>: training throughput of the reference config (--channels 32 --mults 1,2,2 --res-blocks 2
/// --attention 7 --batch 64 on 28×28×1): images/s over timed steps after warm-up, ms per step, peak resident memory.
/// </summary>
public static class BenchTrainCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(TextWriter output, TextWriter error)
    {
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 20, Description = "Timed steps." };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 3, Description = "Untimed warm-up steps." };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 64 };
        var threads = new Option<int>("--threads") { DefaultValueFactory = _ => 0, Description = "libtorch intra-op threads (0 = one per logical core)." };
        var command = new Command("bench-train", "Measure training throughput of the reference UNet.") { steps, warmup, batch, threads };
        command.SetAction((p, cancellation) => Program.Guard(error, async () =>
        {
            TorchRuntime.Threads = p.GetValue(threads) > 0 ? p.GetValue(threads) : Environment.ProcessorCount;
            var folder = Path.Combine(Path.GetTempPath(), $"bench-train-{Environment.ProcessId}");
            var config = new TrainConfig
            {
                Data = "fashion-mnist", Limit = 4096, Batch = p.GetValue(batch), Steps = int.MaxValue, SampleEvery = 0, CheckpointEvery = int.MaxValue,
                Net = new UNetConfig { BaseChannels = 32, ChannelMults = [1, 2, 2], ResBlocks = 2, AttentionResolutions = [7] },
            };
            using var run = TrainingRun.Start(config, folder);
            for (int i = 0; i < p.GetValue(warmup); i++) run.TrainStep();
            var times = new List<double>();
            for (int i = 0; i < p.GetValue(steps); i++)
            {
                cancellation.ThrowIfCancellationRequested();
                var watch = Stopwatch.StartNew();
                run.TrainStep();
                times.Add(watch.Elapsed.TotalMilliseconds);
            }
            Directory.Delete(folder, recursive: true);
            times.Sort();
            double median = times[times.Count / 2], mean = times.Average();
            await output.WriteLineAsync($"reference UNet ({run.Net.ParameterCount():N0} parameters), batch {config.Batch}, 28×28×1, libtorch {TorchRuntime.Version}, {TorchRuntime.Threads} threads:");
            await output.WriteLineAsync($"  {config.Batch / (median / 1000):0.0} images/s (median step {median:0.0} ms, mean {mean:0.0} ms over {times.Count} steps)");
            await output.WriteLineAsync($"  peak resident memory {PeakResidentMiB():0} MiB");
            return 0;
        }));
        return command;
    }

    /// <summary>VmHWM from /proc/self/status (the process's peak resident set), in MiB.</summary>
    public static double PeakResidentMiB() => ProcStatus("VmHWM:");

    /// <summary>VmRSS from /proc/self/status (the current resident set), in MiB.</summary>
    public static double ResidentMiB() => ProcStatus("VmRSS:");

    private static double ProcStatus(string key)
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        return line is null ? double.NaN : double.Parse(line[key.Length..].Trim().Split(' ')[0]) / 1024;
    }
}
