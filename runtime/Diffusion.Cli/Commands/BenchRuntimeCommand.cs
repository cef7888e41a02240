using Diffusion.Runtime.Generation;
using System.CommandLine;
using System.Diagnostics;
using Diffusion.Runtime;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;
using Diffusion.Runtime.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Spectre.Console;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>bench-runtime</c>: the sampling loop's cost over the bare network. For each batch size it times (a) ONNX
/// Runtime's bare Run on the same session with a hand-made IoBinding — the baseline —, (b) the usual C# pattern: each
/// step builds fresh input tensors, calls Run and copies the output back to a new array, and (c) each sampler's loop
/// over buffers prepared once (as a generation does), reporting ms per network evaluation, loop time / summed model
/// time, the fresh-tensor pattern's time over the loop's, and managed bytes allocated per step after warm-up (the
/// difference between a 2n-step and an n-step run, divided by n).
/// </summary>
public static class BenchRuntimeCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new ModelArguments();
        var batches = new Option<string>("--batches")
        {
            Description = "Comma-separated batch sizes.", DefaultValueFactory = _ => "1,64",
        };
        var samplers = new Option<string>("--samplers")
        {
            Description = "Comma-separated samplers to time.", DefaultValueFactory = _ => "ddim,dpm++2m,ddpm",
        };
        var steps = new Option<int>("--steps") { Description = "Steps per generation.", DefaultValueFactory = _ => 50 };
        var repeat = new Option<int>("--repeat")
        {
            Description = "Timed repetitions (the median is reported).", DefaultValueFactory = _ => 5,
        };
        var command = new Command("bench-runtime",
            "Measure the sampling loop against the bare ONNX Runtime Run of the same session.")
        {
            batches, samplers, steps, repeat,
        };
        model.AddTo(command);
        command.SetAction((p, cancellation) => console.Guard(() =>
        {
            int n = p.GetValue(steps), reps = p.GetValue(repeat);
            if (n is <= 0 or > ImageGenerator.MaxSteps || reps is <= 0 or > 1000)
                throw new DiffusionArgumentException("--steps",
                    $"must lie in 1…{ImageGenerator.MaxSteps} and --repeat in 1…1000.");
            var sizes = ParseList(p.GetValue(batches)!, "--batches").Select(v => int.TryParse(v, out var b)
                && b is > 0 and <= 4096 ? b
                : throw new DiffusionArgumentException("--batches", $"'{v}': expected batch sizes 1…4096.")).ToArray();
            using var m = model.Load(p);
            // The baselines below feed float32 x_t, float32 or int64 t and int64 labels, as the model contract has them.
            var other = m.ConditioningInputs.FirstOrDefault(c => c.Name != m.ClassLabelsInput
                || c.ElementType != TensorElementType.Int64);
            if (other is not null || m.SampleElementType != TensorElementType.Float || m.OutputElementType != TensorElementType.Float
                || m.TimestepElementType is not (TensorElementType.Float or TensorElementType.Int64))
                throw new DiffusionException($"bench-runtime times float32 pixel models (x_t float32, t float32 or " +
                    $"int64, class labels int64); model '{m.Source}' " + (other is not null
                        ? $"takes '{other.Name}' ({other.Description})." : "has float16 or int32 inputs."));
            var names = ParseList(p.GetValue(samplers)!, "--samplers");
            var watch = Stopwatch.StartNew();
            var table = new Table().AddColumns("batch", "sampler", "bare Run ms", "fresh-tensor ms", "loop ms/NFE",
                "model ms/NFE", "loop / model", "loop / bare", "fresh / loop", "alloc B/step");
            foreach (var batch in sizes)
            {
                double bare = BareRunMs(m, batch, n * reps, cancellation);
                double fresh = FreshTensorMs(m, batch, n * reps, cancellation);
                using var denoiser = new Denoiser(m, batch, ClassConditions.For(m, []), cancellation: cancellation);
                foreach (var name in names)
                {
                    var sampler = SamplerRegistry.Create(name);
                    var grid = SamplingGrid.Create(m.Schedule, n, new GridOptions());
                    var doubled = SamplingGrid.Create(m.Schedule, 2 * n, new GridOptions());
                    var context = new SamplingContext(denoiser, grid, seed: 1, cancellation: cancellation);
                    var longer = new SamplingContext(denoiser, doubled, seed: 1, cancellation: cancellation);
                    // warm-up: JIT, buffers
                    for (int w = 0; w < 3; w++) { Run(sampler, context); Run(sampler, longer); }
                    var timings = Enumerable.Range(0, reps).Select(_ => Run(sampler, context)).OrderBy(t =>
                        t.LoopMs).ToList();
                    var (loopMs, modelMs, calls, _) = timings[reps / 2];
                    long allocPerStep = (Run(sampler, longer).Allocated - Run(sampler, context).Allocated) / n;
                    console.Error.WriteLine($"bench-runtime: batch {batch}, {name}: {loopMs / calls:0.000} ms per " +
                        $"network evaluation ({watch.Elapsed.TotalSeconds:0} s so far)");
                    table.AddPlainRow(batch.ToString(), name, $"{bare:0.000}", $"{fresh:0.000}",
                        $"{loopMs / calls:0.000}", $"{modelMs / calls:0.000}",
                        $"{loopMs / modelMs:0.000}", $"{loopMs / calls / bare:0.000}",
                            $"{fresh / (loopMs / calls):0.00}", allocPerStep.ToString());
                }
            }
            console.Ansi.Write(table);
            console.Out.WriteLine($"model {m.Source} ({m.Channels}×{m.Height}×{m.Width}), {n} steps, median " +
                $"of {reps}; device {m.Settings.Device}; intra-op " +
                    $"threads {(m.Settings.IntraOpThreads == 0 ? $"ORT default ({Environment.ProcessorCount} logical cores)" : m.Settings.IntraOpThreads)}; ONNX Runtime {OrtLibrary.Version}");
            return Task.FromResult(0);
        }));
        return command;
    }

    /// <summary>
    /// ms per call of InferenceSession.RunWithBinding on buffers bound once: the floor any sampling loop stands on.
    /// </summary>
    private static double BareRunMs(DiffusionModel m, int batch, int calls, CancellationToken cancellation)
    {
        long[] shape = [batch, m.Channels, m.Height, m.Width];
        var x = BenchSample(m, batch);
        using var sample = OrtValue.CreateTensorValueFromMemory(x, shape);
        using var output = OrtValue.CreateTensorValueFromMemory(new float[x.Length], shape);
        long[] tShape = m.TimestepShape(batch);
        int tCount = tShape.Length == 0 ? 1 : (int)tShape[0];
        using var timestep = m.FloatTimesteps
            ? OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(500f, tCount).ToArray(), tShape)
            : OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(500L, tCount).ToArray(), tShape);
        using var labels = OrtValue.CreateTensorValueFromMemory(new long[batch], [batch]);
        using var binding = m.Session.CreateIoBinding();
        using var run = new RunOptions();
        binding.BindInput(m.SampleInput, sample);
        binding.BindInput(m.TimestepInput, timestep);
        if (m.ClassLabelsInput is { } l) binding.BindInput(l, labels);
        binding.BindOutput(m.OutputName, output);
        for (int i = 0; i < 10; i++) m.Session.RunWithBinding(run, binding);
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < calls; i++)
        {
            m.Session.RunWithBinding(run, binding);
            cancellation.ThrowIfCancellationRequested();
        }
        return watch.Elapsed.TotalMilliseconds / calls;
    }

    /// <summary>
    /// ms per step of the usual C# loop: new input tensors from the step's x (copied), <c>InferenceSession.Run</c> with
    /// named values, and the output copied back into a new array — allocation and host↔device copies every step.
    /// </summary>
    private static double FreshTensorMs(DiffusionModel m, int batch, int calls, CancellationToken cancellation)
    {
        int[] shape = [batch, m.Channels, m.Height, m.Width];
        var x = BenchSample(m, batch);
        int[] tShape = [.. m.TimestepShape(batch).Select(d => (int)d)];
        int tCount = tShape.Length == 0 ? 1 : tShape[0];
        bool floatTime = m.FloatTimesteps;
        float[] Step()
        {
            var inputs = new List<NamedOnnxValue>
            {
                NamedOnnxValue.CreateFromTensor(m.SampleInput, new DenseTensor<float>(x.ToArray(), shape)),
                floatTime
                    ? NamedOnnxValue.CreateFromTensor(m.TimestepInput,
                        new DenseTensor<float>(Enumerable.Repeat(500f, tCount).ToArray(), tShape))
                          : NamedOnnxValue.CreateFromTensor(m.TimestepInput,
                              new DenseTensor<long>(Enumerable.Repeat(500L, tCount).ToArray(), tShape)),
            };
            if (m.ClassLabelsInput is { } l)
                inputs.Add(NamedOnnxValue.CreateFromTensor(l, new DenseTensor<long>(new long[batch], [batch])));
            using var results = m.Session.Run(inputs, [m.OutputName]);
            return results[0].AsTensor<float>().ToArray();
        }
        for (int i = 0; i < 10; i++) Step();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < calls; i++)
        {
            Step();
            cancellation.ThrowIfCancellationRequested();
        }
        return watch.Elapsed.TotalMilliseconds / calls;
    }

    /// <summary>The fixed x_t both baselines feed: values spread over [−1, 1).</summary>
    private static float[] BenchSample(DiffusionModel m, int batch)
    {
        var x = new float[batch * m.ImageSize];
        for (int i = 0; i < x.Length; i++) x[i] = (i % 17) / 8f - 1;
        return x;
    }

    /// <summary>
    /// One sampling run on a prepared context: its wall time, the time inside the network, its calls and managed bytes
    /// allocated.
    /// </summary>
    private static (double LoopMs, double ModelMs, long Calls, long Allocated) Run(ISampler sampler,
        SamplingContext context)
    {
        context.Begin(0);
        context.DrawInitialNoise(context.X);
        long calls = context.Model.Evaluations, ticks = context.Model.ModelTicks;
        long bytes = GC.GetAllocatedBytesForCurrentThread(), start = Stopwatch.GetTimestamp();
        sampler.Sample(context);
        double loopMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - bytes;
        return (loopMs, Stopwatch.GetElapsedTime(0, context.Model.ModelTicks - ticks).TotalMilliseconds,
            context.Model.Evaluations - calls, allocated);
    }

    private static string[] ParseList(string text, string option)
    {
        var items = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (items.Length == 0) throw new DiffusionArgumentException(option, "needs at least one value.");
        if (option == "--batches" && items.Any(i => !int.TryParse(i, out var b) || b <= 0))
            throw new DiffusionArgumentException(option, $"'{text}': expected positive integers separated by commas.");
        return items;
    }
}
