using Diffusion.Evaluation.Benchmark;
using Diffusion.Runtime.Generation;
using System.CommandLine;
using System.Diagnostics;
using Diffusion.Runtime;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Pipelines;
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
/// difference between a 2n-step and an n-step run, divided by n). Per batch it also gives the bare Run's GFLOP/s
/// (from the graph's own multiply-accumulates) and its share of the CPU's measured FMA peak, beside any
/// <c>--versus</c> graphs of the same network timed in interleaved blocks; <c>--profile</c> adds where the time goes
/// per operator type.
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
        var versus = new Option<string[]>("--versus")
        {
            Description = "Another model file (same inputs; repeatable) whose bare Run is timed beside the first's, " +
                "interleaved in the same run, with its outputs' largest difference: e.g. another exporter's graph " +
                "of the same network.",
            AllowMultipleArgumentsPerToken = false,
        };
        var profile = new Option<bool>("--profile")
        {
            Description = "Also print where a bare Run's time goes, per operator type (ONNX Runtime's profiler), at " +
                "every batch size, for each model.",
        };
        var torchPipeline = new Option<string?>("--torch-pipeline")
        {
            Description = "On a text-to-image folder: also time diffusers' StableDiffusionPipeline on torch for the "
                + "same request, on the folder's architecture (its UNet and VAE configs; random weights), and give the "
                + "ratio. The value is diffusers' src folder; needs Debian's python3-torch (see --python).",
        };
        var python = new Option<string>("--python")
        {
            Description = "Python with torch for --torch-pipeline.", DefaultValueFactory = _ => "/usr/bin/python3",
        };
        var command = new Command("bench-runtime",
            "Measure the sampling loop against the bare ONNX Runtime Run of the same session.")
        {
            batches, samplers, steps, repeat, versus, profile, torchPipeline, python,
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
            using var pipeline = ModelArguments.IsTextToImage(model.PathOf(p)) ? model.LoadPipeline(p) : null;
            var diffusersSource = p.GetValue(torchPipeline);
            if (diffusersSource is not null)
                TorchPipeline.Check(pipeline is not null, diffusersSource, p.GetValue(python)!);
            using var pixelModel = pipeline is null ? model.Load(p) : null;
            var m = pipeline?.Unet ?? pixelModel!;
            // The network's conditioning: the null label, or a text model's embedding of the empty prompt.
            var conditions = pipeline is null ? ClassConditions.For(m, [])
                : new Runtime.Conditioning.Conditions
                {
                    Conditional = Runtime.Conditioning.Condition.None.With(TextToImagePipeline.HiddenStatesInput,
                        Runtime.Conditioning.ConditioningTensor.FromFloats(pipeline.TextEncoder.Encode(
                            [pipeline.Tokenizer.Encode("").Ids]), 1, pipeline.Tokenizer.Config.ModelMaxLength,
                            pipeline.TextEncoder.HiddenSize)),
                };
            // The fresh-tensor pattern is written for the model contract: float32 x_t, float32 or int64 t, int64 labels.
            bool contract = m.ConditioningInputs.All(c => c.Name == m.ClassLabelsInput
                    && c.ElementType == TensorElementType.Int64)
                && m.SampleElementType == TensorElementType.Float && m.OutputElementType == TensorElementType.Float
                && m.TimestepElementType is TensorElementType.Float or TensorElementType.Int64;
            var names = ParseList(p.GetValue(samplers)!, "--samplers");
            // Another model file of the same network, timed beside the first with the same settings and inputs.
            DiffusionModel Open(string path, Func<SessionSettings, SessionSettings> adjust) =>
                ModelArguments.IsTextToImage(path)
                    ? DiffusionModel.Load(path, new ModelOptions { Session = adjust(m.Settings) })
                    : model.Load(p, path: path, adjust: adjust);
            var graphs = new List<(string Label, DiffusionModel Model, string Path)> { ("model", m, model.PathOf(p)) };
            using var others = new DisposableList<DiffusionModel>();
            foreach (var (path, k) in (p.GetValue(versus) ?? []).Select((v, k) => (v, k)))
            {
                var other = others.Add(Open(path, s => s));
                CheckSameInputs(m, other, path);
                graphs.Add(($"versus {k + 1}", other, path));
            }
            int threads = m.Settings.IntraOpThreads == 0 ? Environment.ProcessorCount : m.Settings.IntraOpThreads;
            // measured again before each batch: this figure drifts with the machine as the network's time does
            double peak = double.NaN;
            // The graph's own multiply-accumulates per image: one profiled run at batch 1 with ORT's optimisations
            // off (fused or re-laid-out kernels would count padded channels), and how many kernels each form runs.
            var written = graphs.Select(g => ProfileOf(Open, g.Path, conditions, 1, 1,
                GraphOptimizationLevel.ORT_DISABLE_ALL, cancellation)).ToList();
            var optimised = graphs.Select(g => ProfileOf(Open, g.Path, conditions, 1, 1, null, cancellation)).ToList();
            var watch = Stopwatch.StartNew();
            var table = new Table().AddColumns("batch", "sampler", "bare Run ms", "fresh-tensor ms", "loop ms/NFE",
                "model ms/NFE", "loop / model", "loop / bare", "fresh / loop", "alloc B/step");
            var network = new Table().AddColumns("batch", "graph", "bare Run ms", "images/s", "GFLOP/s",
                "of FMA peak", "time / model's", "max |Δ| vs model");
            var profiles = new List<(int Batch, string Label, GraphProfile Profile, double BareMs)>();
            foreach (var batch in sizes)
            {
                if (!m.Settings.Device.IsCuda) peak = FmaPeak.Measure(threads);
                var (bare, difference) = BareRunMs(graphs.Select(g => g.Model).ToList(), batch, conditions, n, reps,
                    cancellation);
                for (int g = 0; g < graphs.Count; g++)
                {
                    double gflops = 2.0 * written[g].Macs * batch / (bare[g] / 1000) / 1e9;
                    network.AddPlainRow(batch.ToString(), graphs[g].Label, $"{bare[g]:0.000}",
                        $"{batch / bare[g] * 1000:0.0}", $"{gflops:0.0}",
                        double.IsNaN(peak) ? "—" : $"{gflops / peak:P1} of {peak:0}",
                        $"{bare[g] / bare[0]:0.000}", $"{difference[g]:0.0e+0}");
                    if (p.GetValue(profile))
                        profiles.Add((batch, graphs[g].Label, ProfileOf(Open, graphs[g].Path, conditions, batch,
                            Math.Max(3, reps), null, cancellation), bare[g]));
                }
                double fresh = contract ? FreshTensorMs(m, batch, n * reps, cancellation) : double.NaN;
                using var denoiser = new Denoiser(m, batch, conditions, cancellation: cancellation);
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
                    table.AddPlainRow(batch.ToString(), name, $"{bare[0]:0.000}", contract ? $"{fresh:0.000}" : "—",
                        $"{loopMs / calls:0.000}", $"{modelMs / calls:0.000}",
                        $"{loopMs / modelMs:0.000}", $"{loopMs / calls / bare[0]:0.000}",
                            contract ? $"{fresh / (loopMs / calls):0.00}" : "—", allocPerStep.ToString());
                }
            }
            console.Ansi.Write(table);
            console.Ansi.Write(network);
            for (int g = 0; g < graphs.Count; g++)
                console.Out.WriteLine($"{graphs[g].Label} {graphs[g].Path}: {written[g].Macs:N0} " +
                    $"multiply-accumulates ({2 * written[g].Macs / 1e9:0.000} GFLOP) per image; {written[g].Nodes.Count} kernels as " +
                    $"written, {optimised[g].Nodes.Count} after ONNX Runtime's optimisation");
            console.Out.WriteLine(double.IsNaN(peak) ? "FMA peak: not measured on a CUDA device"
                : $"FMA peak of this CPU (GFLOP/s float32, measured before each batch's timings): {threads} " +
                    $"threads, {FmaPeak.Unit}{(threads > 1 ? "; " + FmaPeak.Scaling(threads) : "")}");
            foreach (var (batch, label, graphProfile, bareMs) in profiles)
                Breakdown(console, batch, label, graphProfile, bareMs);
            if (pipeline is not null)
                Pipeline(console, pipeline, reps, diffusersSource is null ? null
                    : new TorchPipeline(p.GetValue(python)!, diffusersSource, model.PathOf(p),
                        pipeline.Unet.Settings.IntraOpThreads), cancellation);
            console.Out.WriteLine($"model {m.Source} ({m.Channels}×{m.Height}×{m.Width}), {n} steps, median " +
                $"of {reps}; device {m.Settings.Device}; intra-op " +
                    $"threads {(m.Settings.IntraOpThreads == 0 ? $"ORT default ({Environment.ProcessorCount} logical cores)" : m.Settings.IntraOpThreads)}; ONNX Runtime {OrtLibrary.Version}");
            return Task.FromResult(0);
        }));
        return command;
    }

    /// <summary>
    /// ms per call of InferenceSession.RunWithBinding on buffers bound once — the floor any sampling loop stands on —
    /// for each model: the median of <paramref name="reps"/> blocks of <paramref name="calls"/> calls, the models'
    /// blocks interleaved so that a drift of the machine's speed falls on all of them alike; and each output's largest
    /// difference from the first model's on the same inputs.
    /// </summary>
    private static (double[] Ms, double[] MaxDifference) BareRunMs(IReadOnlyList<DiffusionModel> models, int batch,
        Runtime.Conditioning.Conditions conditions, int calls, int reps, CancellationToken cancellation)
    {
        using var runs = new DisposableList<BoundRun>();
        foreach (var m in models) runs.Add(new BoundRun(m, batch, conditions));
        foreach (var run in runs) run.Ms(10, cancellation);
        var times = runs.Select(_ => new List<double>()).ToList();
        for (int r = 0; r < reps; r++)
            for (int k = 0; k < runs.Count; k++) times[k].Add(runs[k].Ms(calls, cancellation));
        var reference = runs[0].Output();
        return ([.. times.Select(t => t.Order().ElementAt(t.Count / 2))],
            [.. runs.Select(r => r.Output().Zip(reference, (a, b) => (double)Math.Abs(a - b)).Max())]);
    }

    /// <summary>
    /// ONNX Runtime's profile of <paramref name="runs"/> bare runs at <paramref name="batch"/> after one warm-up, on a
    /// session of its own (the model's settings, or with <paramref name="level"/> as its graph optimisation).
    /// </summary>
    private static GraphProfile ProfileOf(Func<string, Func<SessionSettings, SessionSettings>, DiffusionModel> open,
        string path, Runtime.Conditioning.Conditions conditions, int batch, int runs, GraphOptimizationLevel? level,
        CancellationToken cancellation)
    {
        var prefix = Path.Combine(Path.GetTempPath(), $"diffusion-profile-{Guid.NewGuid():N}");
        string? file = null;
        try
        {
            // Counting the graph as written: pre-packed weights would drop out of the profile's input shapes.
            using var m = open(path, s => s with
            {
                ProfilePrefix = prefix, OptimizationLevel = level ?? s.OptimizationLevel,
                ConfigEntries = level is null ? s.ConfigEntries
                    : new Dictionary<string, string>(s.ConfigEntries) { ["session.disable_prepacking"] = "1" },
            });
            using (var run = new BoundRun(m, batch, conditions)) run.Ms(1 + runs, cancellation);
            file = m.Session.EndProfiling();
            return GraphProfile.Read(file, warmupRuns: 1);
        }
        finally
        {
            if (file is not null) File.Delete(file);
        }
    }

    /// <summary>Where one bare Run's time goes, per operator type.</summary>
    private static void Breakdown(CliConsole console, int batch, string label, GraphProfile profile, double bareMs)
    {
        var table = new Table().AddColumns("op type", "nodes", "ms per call", "share of kernels", "GFLOP/s");
        foreach (var (op, nodes, ms, macs) in profile.ByOpType())
            table.AddPlainRow(op, nodes.ToString(), $"{ms:0.000}", $"{ms / profile.KernelMs:P1}",
                macs > 0 ? $"{2.0 * macs / (ms / 1000) / 1e9:0.0}" : "");
        console.Out.WriteLine($"{label}, batch {batch}: kernels {profile.KernelMs:0.000} ms of a {bareMs:0.000} ms " +
            $"bare Run (median of {profile.Runs} profiled runs; GFLOP/s of the optimised graph's own kernels)");
        console.Ansi.Write(table);
    }

    /// <summary>A second model must take the first one's inputs for the same bound buffers.</summary>
    private static void CheckSameInputs(DiffusionModel m, DiffusionModel other, string path)
    {
        string Describe(DiffusionModel x) => $"{x.Channels}×{x.Height}×{x.Width} '{x.SampleInput}' " +
            $"({x.SampleElementType}), '{x.TimestepInput}' ({x.TimestepElementType}), " +
            string.Join(", ", x.ConditioningInputs.Select(c => $"'{c.Name}' ({c.ElementType})")) +
            $" → '{x.OutputName}' ({x.OutputElementType})";
        if (Describe(m) != Describe(other))
            throw new DiffusionArgumentException("--versus",
                $"'{path}' takes {Describe(other)}; the model takes {Describe(m)}.");
    }

    /// <summary>
    /// A session's inputs bound once to tensors of their own element types over managed arrays (x_t filled, t = 500,
    /// the conditioning's first entry in every row) and its output to a buffer: a bare Run, timed.
    /// </summary>
    private sealed class BoundRun : IDisposable
    {
        private readonly DiffusionModel _m;
        private readonly OrtIoBinding _binding;
        private readonly RunOptions _run = new();
        private readonly List<OrtValue> _values = [];
        private readonly OrtValue _output;

        public BoundRun(DiffusionModel m, int batch, Runtime.Conditioning.Conditions conditions)
        {
            _m = m;
            _binding = m.Session.CreateIoBinding();
            long[] shape = [batch, m.Channels, m.Height, m.Width];
            _binding.BindInput(m.SampleInput, Tensor(m.SampleElementType, shape, i => i % 17 / 8.0 - 1));
            _binding.BindInput(m.TimestepInput, Tensor(m.TimestepElementType, m.TimestepShape(batch), _ => 500));
            foreach (var c in m.ConditioningInputs)
            {
                var t = conditions.Conditional[c.Name]!;
                _binding.BindInput(c.Name, Tensor(c.ElementType, [batch, .. t.EntryShape.Select(d => (long)d)],
                    i => t.IsInteger ? t.Integers(0)[i % t.EntrySize] : t.Floats(0)[i % t.EntrySize]));
            }
            _output = Tensor(m.OutputElementType, shape, _ => 0);
            _binding.BindOutput(m.OutputName, _output);
        }

        /// <summary>The last run's output as float32.</summary>
        public float[] Output() => _m.OutputElementType == TensorElementType.Float16
            ? [.. _output.GetTensorDataAsSpan<Float16>().ToArray().Select(v => (float)v)]
            : _output.GetTensorDataAsSpan<float>().ToArray();

        /// <summary>ms per call over <paramref name="calls"/> calls.</summary>
        public double Ms(int calls, CancellationToken cancellation)
        {
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < calls; i++)
            {
                _m.Session.RunWithBinding(_run, _binding);
                cancellation.ThrowIfCancellationRequested();
            }
            return watch.Elapsed.TotalMilliseconds / calls;
        }

        private OrtValue Tensor(TensorElementType type, long[] shape, Func<int, double> value)
        {
            int n = (int)shape.Aggregate(1L, (a, d) => a * d);
            var v = type switch
            {
                TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(
                    Enumerable.Range(0, n).Select(i => (float)value(i)).ToArray(), shape),
                TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(
                    Enumerable.Range(0, n).Select(i => (Float16)(float)value(i)).ToArray(), shape),
                TensorElementType.Int64 => OrtValue.CreateTensorValueFromMemory(
                    Enumerable.Range(0, n).Select(i => (long)value(i)).ToArray(), shape),
                _ => OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, n).Select(i => (int)value(i)).ToArray(),
                    shape),
            };
            _values.Add(v);
            return v;
        }

        public void Dispose()
        {
            _binding.Dispose();
            _run.Dispose();
            foreach (var v in _values) v.Dispose();
        }
    }

    /// <summary>
    /// A text-to-image pipeline's other parts, median of <paramref name="reps"/>: the text encoder once per request (a
    /// prompt and its negative), the VAE decoder per image, and one whole 20-step DPM-Solver++(2M) request guided at
    /// 7.5 with the share each part took.
    /// </summary>
    private static void Pipeline(CliConsole console, TextToImagePipeline pipeline, int reps, TorchPipeline? torch,
        CancellationToken cancellation)
    {
        double Median(Func<double> ms) => Enumerable.Range(0, reps + 1).Select(_ => ms()).Skip(1).Order()
            .ElementAt(reps / 2); // the first run warms up
        var ids = new[] { pipeline.Tokenizer.Encode("a photo of an astronaut riding a horse").Ids,
            pipeline.Tokenizer.Encode("").Ids };
        double text = Median(() =>
        {
            var w = Stopwatch.StartNew();
            pipeline.TextEncoder.Encode(ids, cancellation);
            return w.Elapsed.TotalMilliseconds;
        });
        var latent = pipeline.Unet.Shape;
        var z = new float[latent.Size];
        double vae = Median(() =>
        {
            var w = Stopwatch.StartNew();
            pipeline.VaeDecoder.Decode(z, latent, cancellation);
            return w.Elapsed.TotalMilliseconds;
        });
        var request = new GenerationRequest
        {
            Prompt = "a photo of an astronaut riding a horse", Guidance = 7.5f, Sampler = "dpm++2m", Steps = 20,
            Count = 1,
        };
        pipeline.Generate(request, cancellation: cancellation); // warm-up
        var median = Enumerable.Range(0, reps).Select(_ => pipeline.Generate(request, cancellation: cancellation))
            .OrderBy(r => r.TotalTime).ElementAt(reps / 2); // the parts of the median request, not of another
        double total = median.TotalTime.TotalMilliseconds;
        var last = median;
        var table = new Table().AddColumns("pipeline part", "ms", "share of a request");
        table.AddPlainRow("text encoder (prompt + negative, one run)", $"{text:0.00}", $"{text / total:P1}");
        table.AddPlainRow($"VAE decoder (one {pipeline.Width}×{pipeline.Height} image)", $"{vae:0.00}", $"{vae / total:P1}");
        table.AddPlainRow($"UNet ({last.NetworkCalls} guided calls, network batch 2)",
            $"{last.ModelTime.TotalMilliseconds:0.00}",
            $"{last.ModelTime.TotalMilliseconds / total:P1}");
        table.AddPlainRow("whole request (1 image, dpm++2m, 20 steps, w = 7.5)", $"{total:0.00}",
            $"{1000 / total:0.00} images/s");
        if (torch is not null)
        {
            var (torchMs, banner) = torch.RequestMs(reps, cancellation);
            table.AddPlainRow("diffusers' StableDiffusionPipeline on torch, the same request", $"{torchMs:0.00}",
                $"{1000 / torchMs:0.00} images/s; ours {torchMs / total:0.00}× as fast");
            console.Ansi.Write(table);
            console.Out.WriteLine($"torch: {banner}");
            return;
        }
        console.Ansi.Write(table);
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

    /// <summary>Items disposed together.</summary>
    private sealed class DisposableList<T> : List<T>, IDisposable where T : IDisposable
    {
        public new T Add(T item)
        {
            base.Add(item);
            return item;
        }

        public void Dispose()
        {
            foreach (var item in this) item.Dispose();
        }
    }
}
