using System.Numerics.Tensors;
using Diffusion.OnnxGraph;
using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Data;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.Trainer.Export;

/// <summary>
/// How the activations of an int8 export are calibrated: <see cref="Images"/> training images, each noised by the
/// forward process q(x_t | x₀) at <see cref="Timesteps"/> timesteps spread evenly over [0, T − 1] (the marginals a
/// sampling trajectory passes through, from pure noise to clean), conditioned on its class for even images and on the
/// null label for odd ones (classifier-free guidance runs both), with keyed noise of <see cref="Seed"/>.
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

    /// <summary>
    /// The int8 QDQ form of <paramref name="model"/> (ONNX bytes of the model contract with its diffusion.config),
    /// calibrated on <paramref name="data"/>; <paramref name="source"/> names the model in errors.
    /// </summary>
    public static byte[] Quantize(byte[] model, string source, ImageDataset data, CalibrationOptions options,
        Action<string>? log = null)
    {
        if (options.Images is < 1 or > 1_000_000 || options.Timesteps is < 2 or > 10_000 || options.Batch < 1)
            throw new DiffusionArgumentException("--calibration-images",
                "calibration needs 1…1 000 000 images and 2…10 000 timesteps.");
        ModelProto proto;
        try { proto = ModelProto.Parser.ParseFrom(model); }
        catch (InvalidProtocolBufferException e) { throw new DiffusionException($"{source}: not an ONNX model ({e.Message})."); }
        var json = proto.MetadataProps.FirstOrDefault(p => p.Key == DiffusionConfig.MetadataKey)?.Value
            ?? throw new DiffusionException($"{source}: no {DiffusionConfig.MetadataKey} metadata; int8 calibration " +
                "needs the model's noise schedule and input shape (export it with this trainer).");
        var config = DiffusionConfig.Parse(json, $"{source} ({DiffusionConfig.MetadataKey})");
        if (proto.Graph.Node.Any(n => n.OpType is "QuantizeLinear" or "DequantizeLinear"))
            throw new DiffusionException($"{source}: the model is quantized already.");
        var convs = Convolutions(proto.Graph);
        if (convs.Count == 0)
            throw new DiffusionException($"{source}: no convolution with constant weights to quantize.");
        var tensors = convs.SelectMany(c => new[] { c.Input[0], c.Output[0] }).Distinct().ToArray();
        var ranges = Calibrate(proto, tensors, config, data, options, source, log);
        Rewrite(proto.Graph, convs, ranges);
        proto.DocString = $"{proto.DocString} int8 QDQ: {convs.Count} convolutions (per-channel 7-bit weights, " +
            $"uint8 activations calibrated on {options.Images} images of {data.Source} × {options.Timesteps} " +
            $"timesteps, seed {options.Seed}).".TrimStart();
        return proto.ToByteArray();
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

    /// <summary>Each tensor's (min, max) over the calibration set.</summary>
    private static Dictionary<string, (float Min, float Max)> Calibrate(ModelProto proto, string[] tensors,
        DiffusionConfig config, ImageDataset data, CalibrationOptions options, string source, Action<string>? log)
    {
        var shape = config.SampleSize is { Length: > 0 } given && config.InChannels is int channels ? given
            : throw new DiffusionException($"{source}: its {DiffusionConfig.MetadataKey} has no sample_size and " +
                "in_channels; calibration needs the input shape.");
        int c = channels, h = shape[0], w = shape[^1], size = c * h * w;
        if (data.Channels != c || data.Height != h || data.Width != w)
            throw new DiffusionException($"{data.Source}: calibration images are {data.Channels}×{data.Height}×" +
                $"{data.Width}; {source} takes {c}×{h}×{w}.");
        int count = Math.Min(options.Images, data.Count);
        var probe = proto.Clone();
        foreach (var name in tensors)
            probe.Graph.Output.Add(new ValueInfoProto
            {
                Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float } },
            });
        bool labelled = proto.Graph.Input.Any(i => i.Name == "class_labels");
        if (labelled && !config.NullClass && data.Labels is null)
            throw new DiffusionException($"{data.Source}: {source} needs class labels and has no null label; " +
                "calibrate on labelled data.");
        var schedule = config.CreateSchedule();
        int T = schedule.TrainTimesteps, k = options.Timesteps;
        var timesteps = Enumerable.Range(0, k).Select(j => (int)Math.Round(j * (T - 1.0) / (k - 1))).ToArray();
        var noise = new NoiseGenerator(options.Seed);
        var ranges = tensors.ToDictionary(t => t, _ => (Min: float.PositiveInfinity, Max: float.NegativeInfinity));

        using var session = new InferenceSession(probe.ToByteArray());
        using var run = new RunOptions();
        int total = count * k, batch = Math.Min(options.Batch, total);
        var x = new float[batch * size];
        var t = new float[batch];
        var labels = new long[batch];
        var eps = new float[size];
        for (int start = 0; start < total; start += batch)
        {
            int b = Math.Min(batch, total - start);
            for (int j = 0; j < b; j++)
            {
                int image = (start + j) / k, step = (start + j) % k;
                double alphaBar = schedule.AlphasCumprod[timesteps[step]];
                float a = (float)Math.Sqrt(alphaBar), s = (float)Math.Sqrt(1 - alphaBar);
                noise.Fill(eps, image, (uint)step);
                var pixels = data.Pixels.AsSpan(image * size, size);
                var xt = x.AsSpan(j * size, size);
                for (int v = 0; v < size; v++) xt[v] = a * (pixels[v] / 127.5f - 1) + s * eps[v];
                t[j] = timesteps[step];
                labels[j] = config.NullClass && (image % 2 == 1 || data.Labels is null) ? config.NumClasses
                    : Math.Min(data.Labels![image], config.NumClasses - 1);
            }
            var inputs = new Dictionary<string, OrtValue>
            {
                ["sample"] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, x.AsMemory(0, b * size), [b, c, h, w]),
                ["timestep"] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, t.AsMemory(0, b), [b]),
            };
            if (labelled) inputs["class_labels"] =
                OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, labels.AsMemory(0, b), [b]);
            try
            {
                using var results = session.Run(run, inputs, tensors);
                for (int i = 0; i < tensors.Length; i++)
                {
                    var values = results[i].GetTensorDataAsSpan<float>();
                    if (!float.IsFinite(TensorPrimitives.Sum(values)))
                        throw new DiffusionException($"{source}: '{tensors[i]}' is not finite on calibration data.");
                    var (min, max) = ranges[tensors[i]];
                    ranges[tensors[i]] = (Math.Min(min, TensorPrimitives.Min(values)),
                        Math.Max(max, TensorPrimitives.Max(values)));
                }
            }
            finally { foreach (var v in inputs.Values) v.Dispose(); }
            log?.Invoke($"calibration: {start + b}/{total} network inputs");
        }
        return ranges;
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
                float peak = TensorPrimitives.MaxMagnitude(row);
                scales[o] = peak > 0 ? MathF.Abs(peak) / WeightLevels : 1;
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
