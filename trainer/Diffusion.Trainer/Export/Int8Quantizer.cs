using System.Numerics.Tensors;
using Diffusion.OnnxGraph;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Schedules;
using Diffusion.Trainer.Data;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.Trainer.Export;

/// <summary>How a calibrated activation's uint8 range is chosen.</summary>
public enum RangeMethod
{
    /// <summary>The least expected squared error over the calibration values (<see cref="ActivationHistogram"/>).</summary>
    LeastSquares,
    /// <summary>The smallest and largest calibration value.</summary>
    MinMax,
}

/// <summary>
/// How the activations of an int8 export are calibrated: <see cref="Images"/> training images, each noised by the
/// forward process q(x_t | x₀) at <see cref="Timesteps"/> timesteps spread evenly over [0, T − 1] (the marginals a
/// sampling trajectory passes through, from pure noise to clean), conditioned on its class for even images and on the
/// null label for odd ones (classifier-free guidance runs both), with keyed noise of <see cref="Seed"/>. The
/// <see cref="VerificationImages"/> images after them, noised alike with the next seed, measure the result (images are
/// counted modulo the data set: a smaller one is gone through again with other noise).
/// </summary>
public sealed record CalibrationOptions
{
    /// <summary>Training images used.</summary>
    public int Images { get; init; } = 256;
    /// <summary>Timesteps per image.</summary>
    public int Timesteps { get; init; } = 20;
    /// <summary>The seed of the forward process's noise.</summary>
    public ulong Seed { get; init; }
    /// <summary>Network inputs per ONNX Runtime call.</summary>
    public int Batch { get; init; } = 64;
    /// <summary>How each activation's range is chosen.</summary>
    public RangeMethod Ranges { get; init; } = RangeMethod.LeastSquares;
    /// <summary>Held-out images (after the calibration ones) on which int8 is compared with float32.</summary>
    public int VerificationImages { get; init; } = 64;
}

/// <summary>
/// How far an int8 export's predictions lie from its float32 source's on held-out forward-process inputs at one
/// timestep: the relative RMS error ‖int8 − fp32‖ / ‖fp32‖ of the network's output, the RMS error of the x̂₀ it
/// implies (in data units, [−1, 1]: what the sampler's step moves by), and the largest absolute output difference.
/// </summary>
public sealed record TimestepError(int Timestep, double RelativeError, double SampleError, double MaxAbsError);

/// <summary>An int8 export measured against its float32 source, per calibration timestep.</summary>
public sealed record Int8Report(int Convolutions, IReadOnlyList<TimestepError> PerTimestep, double RelativeError)
{
    /// <summary>The RMS error of x̂₀ over every timestep.</summary>
    public double SampleError => Math.Sqrt(PerTimestep.Average(p => p.SampleError * p.SampleError));

    /// <summary>Two lines for the log.</summary>
    public override string ToString()
    {
        var worst = PerTimestep.MaxBy(p => p.SampleError)!;
        var shown = PerTimestep.Where((_, i) => i % Math.Max(1, PerTimestep.Count / 5) == 0 || i == PerTimestep.Count - 1);
        return $"int8 vs float32 on held-out inputs ({Convolutions} convolutions quantized): relative RMS error of " +
            $"the output {RelativeError:0.0000}, RMS error of x̂₀ {SampleError:0.0000} (worst at t = {worst.Timestep}: " +
            $"{worst.SampleError:0.0000}), max |Δ| {PerTimestep.Max(p => p.MaxAbsError):0.000}\n" +
            "per timestep, t: output / x̂₀ error: " +
            string.Join(", ", shown.Select(p => $"{p.Timestep}: {p.RelativeError:0.0000} / {p.SampleError:0.0000}"));
    }
}

/// <summary>
/// Post-training static quantization of an exported UNet to int8 in ONNX's QDQ form, which ONNX Runtime fuses into
/// QLinearConv (its VNNI / AMX / AVX2 integer kernels on the CPU):
/// <list type="bullet">
/// <item>every convolution except the one that reads <c>sample</c> and the one that writes the output (few
/// multiply-accumulates; the precision of x_t and of the prediction matters most there) gets int8 weights,
/// symmetric per output channel over ±<see cref="WeightLevels"/>, an int32 bias on the scale s_x·s_w, and uint8
/// activations, asymmetric per tensor, on its input and its output (QuantizeLinear → DequantizeLinear pairs);</item>
/// <item>activation ranges are the min/max seen over the calibration set (<see cref="CalibrationOptions"/>), widened to
/// hold 0;</item>
/// <item>everything else — normalisation, SiLU, attention, the time embedding — stays float32.</item>
/// </list>
/// Weights use 7 bits (±63) rather than 8: without AVX-VNNI, ONNX Runtime's u8×s8 kernels multiply with VPMADDUBSW,
/// whose int16 pair sums saturate at 255·127·2 &gt; 32 767; 255·63·2 cannot. The file is the same on every CPU.
/// </summary>
public static class Int8Quantizer
{
    /// <summary>The largest magnitude of a quantized weight (7 bits).</summary>
    public const int WeightLevels = 63;

    /// <summary>The most bytes of activations one calibration call brings back (the batch shrinks to fit).</summary>
    public const long MaxActivationBytes = 256L << 20;

    /// <summary>
    /// The int8 QDQ form of <paramref name="model"/> (ONNX bytes of the model contract with its diffusion.config),
    /// calibrated on <paramref name="data"/> and measured against it on held-out images; <paramref name="source"/>
    /// names the model in errors.
    /// </summary>
    public static (byte[] Model, Int8Report Report) Quantize(byte[] model, string source, ImageDataset data,
        CalibrationOptions options, Action<string>? log = null)
    {
        if (options.Images is < 1 or > 1_000_000 || options.Timesteps is < 2 or > 10_000 || options.Batch < 1
            || options.VerificationImages is < 1 or > 1_000_000)
            throw new DiffusionArgumentException("--calibration-images",
                "calibration needs 1…1 000 000 images and 2…10 000 timesteps.");
        var (proto, config) = ExportedModel.Open(model, source,
            "int8 calibration needs the model's noise schedule and input shape");
        var convs = Convolutions(proto.Graph);
        if (convs.Count == 0)
            throw new DiffusionException($"{source}: no convolution with constant weights to quantize.");
        var inputs = new ForwardProcessInputs(proto, config, data, options, source);
        var tensors = convs.SelectMany(c => new[] { c.Input[0], c.Output[0] }).Distinct().ToArray();
        var ranges = Calibrate(proto, tensors, inputs, options, source, log);
        var original = proto.ToByteArray();
        Rewrite(proto.Graph, convs, ranges);
        proto.DocString = $"{proto.DocString} int8 QDQ: {convs.Count} convolutions (per-channel 7-bit weights, " +
            $"uint8 activations on {(options.Ranges == RangeMethod.MinMax ? "min/max" : "least-squares")} ranges " +
            $"calibrated on {options.Images} images of {data.Source} × " +
            $"{options.Timesteps} timesteps, seed {options.Seed}).".TrimStart();
        var bytes = proto.ToByteArray();
        var report = Verify(original, bytes, inputs, options, convs.Count);
        foreach (var line in report.ToString().Split('\n')) log?.Invoke(line);
        return (bytes, report);
    }

    /// <summary>The convolutions to quantize, in graph order.</summary>
    private static List<NodeProto> Convolutions(GraphProto graph)
    {
        var initializers = graph.Initializer.ToDictionary(i => i.Name);
        var inputs = graph.Input.Select(i => i.Name).ToHashSet();
        // values that reach a graph output directly or through Identity nodes
        var outputs = graph.Output.Select(o => o.Name).ToHashSet();
        foreach (var node in graph.Node.Reverse())
            if (node.OpType == "Identity" && outputs.Contains(node.Output[0])) outputs.Add(node.Input[0]);
        return graph.Node.Where(n => n.OpType == "Conv" && n.Input.Count >= 2
                && initializers.TryGetValue(n.Input[1], out var w) && w.Dims.Count == 4
                && w.DataType == (int)DataType.Float
                && (n.Input.Count < 3 || initializers.ContainsKey(n.Input[2]))
                && !inputs.Contains(n.Input[0]) && !outputs.Contains(n.Output[0]))
            .ToList();
    }

    /// <summary>
    /// Each tensor's uint8 range over the calibration set: its min/max (one pass), or the least-squares range of its
    /// histogram over that min/max (a second pass).
    /// </summary>
    private static Dictionary<string, (float Min, float Max)> Calibrate(ModelProto proto, string[] tensors,
        ForwardProcessInputs inputs, CalibrationOptions options, string source, Action<string>? log)
    {
        var probe = proto.Clone();
        foreach (var name in tensors)
            probe.Graph.Output.Add(new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float } },
            });
        using var session = new InferenceSession(probe.ToByteArray());
        int total = options.Images * options.Timesteps;
        // Every activation of a batch comes back at once: the batch is bounded by what one input's activations take.
        long perInput = 0;
        inputs.Run(session, tensors, 0, 1, options.Seed, (results, steps) => perInput = Math.Max(perInput,
            results.Sum(r => r.GetTensorTypeAndShape().ElementCount) * sizeof(float) / steps.Length), batchLimit: 1);
        int batch = (int)Math.Clamp(MaxActivationBytes / Math.Max(perInput, 1), 1, options.Batch);
        // Every tensor's values on every calibration input, in turn.
        void Pass(string what, Action<int, ReadOnlySpan<float>> visit)
        {
            int done = 0;
            inputs.Run(session, tensors, 0, options.Images, options.Seed, (results, steps) =>
            {
                for (int i = 0; i < tensors.Length; i++)
                {
                    var values = results[i].GetTensorDataAsSpan<float>();
                    if (!float.IsFinite(TensorPrimitives.Sum(values)))
                        throw new DiffusionException($"{source}: '{tensors[i]}' is not finite on calibration data.");
                    visit(i, values);
                }
                done += steps.Length;
                log?.Invoke($"calibration, {what}: {done}/{total} network inputs");
            }, batch);
        }
        var min = tensors.Select(_ => float.PositiveInfinity).ToArray();
        var max = tensors.Select(_ => float.NegativeInfinity).ToArray();
        Pass("min/max", (i, values) =>
        {
            min[i] = Math.Min(min[i], TensorPrimitives.Min(values));
            max[i] = Math.Max(max[i], TensorPrimitives.Max(values));
        });
        if (options.Ranges == RangeMethod.MinMax)
            return tensors.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => (min[p.i], max[p.i]));
        var histograms = tensors.Select((_, i) => new ActivationHistogram(min[i], max[i])).ToArray();
        Pass("histograms", (i, values) => histograms[i].Add(values));
        return tensors.Select((t, i) => (t, i)).ToDictionary(p => p.t, p =>
        {
            var (low, high, _) = histograms[p.i].BestRange();
            return (low, high);
        });
    }

    /// <summary>The int8 model's predictions against the float32 one's on the held-out images.</summary>
    private static Int8Report Verify(byte[] reference, byte[] quantized, ForwardProcessInputs inputs,
        CalibrationOptions options, int convolutions)
    {
        using var fp32 = new InferenceSession(reference);
        using var int8 = new InferenceSession(quantized);
        string[] output = [fp32.OutputNames[0]];
        int k = options.Timesteps;
        var squared = new double[k];
        var norm = new double[k];
        var maxAbs = new double[k];
        var count = new long[k];
        var expected = new List<float[]>();
        ulong seed = options.Seed + 1;
        inputs.Run(fp32, output, options.Images, options.VerificationImages, seed,
            (results, _) => expected.Add(results[0].GetTensorDataAsSpan<float>().ToArray()));
        int batch = 0;
        inputs.Run(int8, output, options.Images, options.VerificationImages, seed, (results, steps) =>
        {
            var got = results[0].GetTensorDataAsSpan<float>();
            var want = expected[batch++];
            int per = want.Length / steps.Length;
            for (int j = 0; j < steps.Length; j++)
            {
                count[steps[j]] += per;
                for (int v = j * per; v < (j + 1) * per; v++)
                {
                    double d = got[v] - want[v];
                    squared[steps[j]] += d * d;
                    norm[steps[j]] += (double)want[v] * want[v];
                    maxAbs[steps[j]] = Math.Max(maxAbs[steps[j]], Math.Abs(d));
                }
            }
        });
        var perTimestep = Enumerable.Range(0, k).Select(j => new TimestepError(inputs.Timesteps[j],
            Math.Sqrt(squared[j] / Math.Max(norm[j], double.Epsilon)),
            inputs.SampleErrorPerOutputError(j) * Math.Sqrt(squared[j] / count[j]), maxAbs[j])).ToList();
        return new Int8Report(convolutions, perTimestep, Math.Sqrt(squared.Sum() / Math.Max(norm.Sum(), double.Epsilon)));
    }

    /// <summary>
    /// Network inputs from the forward process: images noised by q(x_t | x₀) at evenly spread timesteps with keyed
    /// noise (image n at timestep index j draws stream (n, j)), and their conditioning.
    /// </summary>
    private sealed class ForwardProcessInputs
    {
        private readonly DiffusionConfig _config;
        private readonly ImageDataset _data;
        private readonly NoiseSchedule _schedule;
        private readonly int _batch, _c, _h, _w;
        private readonly bool _labelled;

        /// <summary>The timesteps each image is noised at.</summary>
        public int[] Timesteps { get; }

        public ForwardProcessInputs(ModelProto proto, DiffusionConfig config, ImageDataset data,
            CalibrationOptions options, string source)
        {
            var shape = config.SampleSize is { Length: > 0 } given && config.InChannels is int channels ? given
                : throw new DiffusionException($"{source}: its {DiffusionConfig.MetadataKey} has no sample_size and " +
                    "in_channels; calibration needs the input shape.");
            (_c, _h, _w) = (channels, shape[0], shape[^1]);
            if (data.Channels != _c || data.Height != _h || data.Width != _w)
                throw new DiffusionException($"{data.Source}: calibration images are {data.Channels}×{data.Height}×" +
                    $"{data.Width}; {source} takes {_c}×{_h}×{_w}.");
            _labelled = proto.Graph.Input.Any(i => i.Name == "class_labels");
            if (_labelled && !config.NullClass && data.Labels is null)
                throw new DiffusionException($"{data.Source}: {source} needs class labels and has no null label; " +
                    "calibrate on labelled data.");
            (_config, _data, _batch) = (config, data, options.Batch);
            _schedule = config.CreateSchedule();
            int T = _schedule.TrainTimesteps, k = options.Timesteps;
            Timesteps = Enumerable.Range(0, k).Select(j => (int)Math.Round(j * (T - 1.0) / (k - 1))).ToArray();
        }

        /// <summary>
        /// How much an error in the network's output at timestep index <paramref name="j"/> moves the x̂₀ it implies:
        /// σ/α for ε (x̂₀ = (x − σε̂)/α), σ for v (x̂₀ = αx − σv̂), 1 for x₀ itself.
        /// </summary>
        public double SampleErrorPerOutputError(int j)
        {
            var (alpha, sigma) = ForwardProcess.Coefficients(_schedule, Timesteps[j]);
            return _config.Prediction switch
            {
                PredictionType.Epsilon => sigma / alpha,
                PredictionType.VPrediction => Math.Abs(PredictionTypes.FromVelocity(alpha, sigma).Sample.OnV),
                _ => 1,
            };
        }

        /// <summary>
        /// Runs <paramref name="session"/> for <paramref name="outputs"/> on images [first, first + count) (modulo the
        /// data set) × every timestep, batch after batch (at most <paramref name="batchLimit"/> inputs per call);
        /// <paramref name="visit"/> sees each batch's results and the timestep index of each of its rows.
        /// </summary>
        public void Run(InferenceSession session, string[] outputs, int first, int count, ulong seed,
            Action<IDisposableReadOnlyCollection<OrtValue>, int[]> visit, int? batchLimit = null)
        {
            int size = _c * _h * _w, k = Timesteps.Length, total = count * k;
            int batch = Math.Min(Math.Min(_batch, batchLimit ?? _batch), total);
            var x = new float[batch * size];
            var t = new float[batch];
            var labels = new long[batch];
            var eps = new float[size];
            var x0 = new float[size];
            var noise = new NoiseGenerator(seed);
            using var options = new RunOptions();
            var memory = OrtMemoryInfo.DefaultInstance;
            for (int start = 0; start < total; start += batch)
            {
                int b = Math.Min(batch, total - start);
                var steps = new int[b];
                for (int j = 0; j < b; j++)
                {
                    int n = (start + j) / k, image = (first + n) % _data.Count;
                    steps[j] = (start + j) % k;
                    noise.Fill(eps, n, (uint)steps[j]);
                    var pixels = _data.Pixels.AsSpan(image * size, size);
                    for (int v = 0; v < size; v++) x0[v] = Pixels.ToModel(pixels[v]);
                    ForwardProcess.Sample(x.AsSpan(j * size, size), x0, eps, NoiseLevel.At(_schedule, Timesteps[steps[j]]));
                    t[j] = Timesteps[steps[j]];
                    labels[j] = _config.NullClass && (n % 2 == 1 || _data.Labels is null) ? _config.NumClasses
                        : Math.Min(_data.Labels![image], _config.NumClasses - 1);
                }
                var feeds = new Dictionary<string, OrtValue>
                {
                    ["sample"] = OrtValue.CreateTensorValueFromMemory(memory, x.AsMemory(0, b * size), [b, _c, _h, _w]),
                    ["timestep"] = OrtValue.CreateTensorValueFromMemory(memory, t.AsMemory(0, b), [b]),
                };
                if (_labelled)
                    feeds["class_labels"] = OrtValue.CreateTensorValueFromMemory(memory, labels.AsMemory(0, b), [b]);
                try
                {
                    using var results = session.Run(options, feeds, outputs);
                    visit(results, steps);
                }
                finally { foreach (var v in feeds.Values) v.Dispose(); }
            }
        }
    }

    /// <summary>Replaces each convolution by its QDQ form, in place.</summary>
    private static void Rewrite(GraphProto graph, List<NodeProto> convs, Dictionary<string, (float Min, float Max)> ranges)
    {
        var initializers = graph.Initializer.ToDictionary(i => i.Name);
        var quantized = convs.ToHashSet();
        var dequantized = new Dictionary<string, (string Name, float Scale)>(); // activation → its DQ output
        var nodes = new List<NodeProto>();
        int id = 0;
        string Add(TensorProto tensor) { graph.Initializer.Add(tensor); return tensor.Name; }

        // QuantizeLinear → DequantizeLinear of an activation on its calibrated uint8 grid.
        (string Name, float Scale) Qdq(string value, string into)
        {
            var (min, max) = ranges[value];
            min = Math.Min(min, 0); max = Math.Max(max, 0);
            float scale = max > min ? (max - min) / 255 : 1;
            byte zero = (byte)Math.Clamp(Math.Round(-min / scale), 0, 255);
            var s = Add(Tensors.Float($"{value}.scale", [scale]));
            var z = Add(Tensors.UInt8($"{value}.zero_point", [zero]));
            nodes.Add(Node("QuantizeLinear", [value, s, z], $"{value}.quantized"));
            nodes.Add(Node("DequantizeLinear", [$"{value}.quantized", s, z], into));
            return (into, scale);
        }

        foreach (var node in graph.Node)
        {
            if (!quantized.Contains(node)) { nodes.Add(node); continue; }
            string input = node.Input[0];
            if (!dequantized.TryGetValue(input, out var x)) dequantized[input] = x = Qdq(input, $"{input}.dequantized");

            var weight = initializers[node.Input[1]];
            var values = Tensors.ToFloats(weight);
            int outChannels = (int)weight.Dims[0], perChannel = values.Length / outChannels;
            var scales = new float[outChannels];
            var q = new sbyte[values.Length];
            for (int o = 0; o < outChannels; o++)
            {
                var row = values.AsSpan(o * perChannel, perChannel);
                // MaxMagnitude returns the value of largest magnitude, sign included
                float peak = MathF.Abs(TensorPrimitives.MaxMagnitude(row));
                scales[o] = peak > 0 ? peak / WeightLevels : 1;
                for (int i = 0; i < perChannel; i++)
                    q[o * perChannel + i] = (sbyte)Math.Clamp(MathF.Round(row[i] / scales[o]), -WeightLevels, WeightLevels);
            }
            string w = weight.Name, layer = $"{w}.int8";
            nodes.Add(Node("DequantizeLinear", [Add(Tensors.Int8($"{w}.quantized", q, [.. weight.Dims])),
                Add(Tensors.Float($"{w}.scale", scales, outChannels)),
                Add(Tensors.Int8($"{w}.zero_point", new sbyte[outChannels], outChannels))], layer, axis: 0));
            var conv = node.Clone();
            conv.Input[0] = x.Name;
            conv.Input[1] = layer;
            if (node.Input.Count >= 3)
            {
                var bias = Tensors.ToFloats(initializers[node.Input[2]]);
                var biasScales = scales.Select(s => s * x.Scale).ToArray();
                var qb = bias.Select((v, o) => (int)Math.Clamp(Math.Round(v / biasScales[o]), int.MinValue + 1,
                    int.MaxValue)).ToArray();
                string b = node.Input[2], biasLayer = $"{b}.int32";
                nodes.Add(Node("DequantizeLinear", [Add(Tensors.Int32($"{b}.quantized", qb, outChannels)),
                    Add(Tensors.Float($"{b}.scale", biasScales, outChannels)),
                    Add(Tensors.Int32($"{b}.zero_point", new int[outChannels], outChannels))], biasLayer, axis: 0));
                conv.Input[2] = biasLayer;
            }
            string output = node.Output[0];
            conv.Output[0] = $"{output}.float{id++}";
            nodes.Add(conv);
            // the convolution's result on its own uint8 grid, back under the name its consumers read
            var (min, max) = ranges[output];
            ranges[conv.Output[0]] = (min, max);
            Qdq(conv.Output[0], output);
        }
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        var used = nodes.SelectMany(n => n.Input).ToHashSet();
        var keep = graph.Initializer.Where(i => used.Contains(i.Name)).ToList();
        graph.Initializer.Clear();
        graph.Initializer.AddRange(keep);
    }

    private static NodeProto Node(string op, string[] inputs, string output, long? axis = null)
    {
        var node = new NodeProto { OpType = op, Name = $"{op}:{output}" };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        if (axis is long a) node.Attribute.Add(Attr.Int("axis", a));
        return node;
    }
}
