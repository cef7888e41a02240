using System.Numerics.Tensors;
using Diffusion.OnnxGraph;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Nn;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Export;

/// <summary>
/// A UNet read back from an ONNX file this trainer exported: the architecture from its weights' names and shapes (and
/// the group count from its first GroupNorm's reshape), the weights from its initializers, the diffusion config from
/// its metadata. It lets a file written by an earlier exporter — the shipped model, whose checkpoint is not kept —
/// be written again in the current exporter's graph form (<see cref="Reexport"/>).
/// </summary>
public static class UNetImporter
{
    /// <summary>The largest output difference a re-export may show against its source (float32 reordering).</summary>
    public const double Tolerance = 1e-4;

    /// <summary>The network and diffusion config in <paramref name="model"/> (named <paramref name="source"/>).
    /// </summary>
    public static (UNet Net, DiffusionConfig Config) Read(byte[] model, string source) =>
        Read(Open(model, source), source);

    private static (ModelProto Proto, DiffusionConfig Config) Open(byte[] model, string source) =>
        ExportedModel.Open(model, source, "re-exporting needs the model's config");

    private static (UNet Net, DiffusionConfig Config) Read((ModelProto Proto, DiffusionConfig Config) opened,
        string source)
    {
        var (proto, config) = opened;
        var weights = proto.Graph.Initializer.GroupBy(i => i.Name).ToDictionary(g => g.Key, g => g.First());
        UNet net;
        try { net = new UNet(Architecture(proto.Graph, weights, config, source)); }
        catch (Exception e) when (e is DiffusionArgumentException or OverflowException)
        {
            throw new DiffusionException($"{source}: the architecture its weights imply is not one this trainer " +
                $"builds ({e.Message}).");
        }
        try
        {
            Load(net, weights, source);
            return (net, config);
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>
    /// <paramref name="model"/> written again by the current exporter, with the largest difference of its output from
    /// the source's on the same inputs (four images across the timesteps, with labels and the null label where the
    /// model has classes); refused where that exceeds <see cref="Tolerance"/>: then the file holds something the
    /// weights do not (an edited graph, another exporter's arithmetic).
    /// </summary>
    public static (byte[] Model, double MaxDifference) Reexport(byte[] model, string source)
    {
        var opened = Open(model, source);
        var (net, config) = Read(opened, source);
        byte[] written;
        using (net) written = UNetExporter.ToOnnx(net, config);
        // the file's own description stays (it lists the attention resolutions in the order they were given)
        var rewritten = ModelProto.Parser.ParseFrom(written);
        rewritten.DocString = opened.Proto.DocString;
        written = rewritten.ToByteArray();
        double difference;
        try { difference = MaxOutputDifference(model, written, net.Config); }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException($"{source}: ONNX Runtime cannot run it to compare ({e.Message}).");
        }
        if (!(difference <= Tolerance))
            throw new DiffusionException($"{source}: written again from its weights, the network's output differs " +
                $"from the file's by {difference:0.0e+0} (more than {Tolerance:0e+0}): the file computes something " +
                "its weights and this exporter do not; it is not rewritten.");
        return (written, difference);
    }

    /// <summary>
    /// The UNetConfig the initializers imply: base width and input channels from conv_in, levels and blocks from the
    /// counts of down and up blocks (L·r and L·(r + 1)), each level's width from its first block, attention from the
    /// blocks that have it, classes, scale-shift and learned variance from their weights' shapes.
    /// </summary>
    private static UNetConfig Architecture(GraphProto graph, Dictionary<string, TensorProto> weights,
        DiffusionConfig config, string source)
    {
        // a shape counts only where the file holds its values (so the network built from the shapes stays within a
        // small multiple of the file's size)
        long[] Dims(string name, int rank)
        {
            if (!weights.TryGetValue(name, out var t))
                throw new DiffusionException($"{source}: no initializer '{name}': not a UNet this trainer exported.");
            long count = t.Dims.Aggregate(1L, (a, d) => d < 0 || a < 0 ? -1 : checked(a * d));
            long stored = t.DataType != (int)TensorProto.Types.DataType.Float ? -2
                : t.RawData.IsEmpty ? t.FloatData.Count : t.RawData.Length / sizeof(float);
            if (t.Dims.Count != rank || count != stored || count <= 0)
                throw new DiffusionException($"{source}: '{name}' is not a float32 tensor of rank {rank} whose " +
                    "values the file holds.");
            return [.. t.Dims];
        }
        int Count(string prefix, string suffix) =>
            Enumerable.Range(0, 1000).TakeWhile(i => weights.ContainsKey($"{prefix}.{i}.{suffix}")).Count();
        var convIn = Dims("conv_in.weight", 4);
        int width = checked((int)convIn[0]), inChannels = checked((int)convIn[1]);
        int down = Count("down_blocks", "conv1.weight"), up = Count("up_blocks", "conv1.weight");
        int levels = up - down;
        if (levels < 1 || down % levels != 0 || Count("downsamples", "conv.weight") != levels - 1)
            throw new DiffusionException($"{source}: {down} down blocks, {up} up blocks and " +
                $"{Count("downsamples", "conv.weight")} downsamples do not make a UNet of this trainer's shape.");
        int blocks = down / levels;
        if (config.SampleSize is not [var height, var side] || height != side)
            throw new DiffusionException($"{source}: its sample_size is missing or not square; this trainer's UNets " +
                "have a square one.");
        var mults = Enumerable.Range(0, levels)
            .Select(l => checked((int)(Dims($"down_blocks.{l * blocks}.conv1.weight", 4)[0] / width))).ToArray();
        var attention = new SortedSet<int>();
        for (int b = 0, size = side; b < down; b++)
        {
            if (b > 0 && b % blocks == 0) size /= 2;
            if (weights.ContainsKey($"down_attentions.{b}.qkv.weight")) attention.Add(size);
        }
        long firstOut = Dims("down_blocks.0.conv1.weight", 4)[0];
        var embedding = Dims("down_blocks.0.time_emb_proj.weight_t", 2); // stored transposed: [embedding, out]
        return new UNetConfig
        {
            InChannels = inChannels, ImageSize = side, BaseChannels = width, ChannelMults = mults, ResBlocks = blocks,
            AttentionResolutions = [.. attention], Dropout = 0,
            NumClasses = weights.ContainsKey("class_embedding.weight")
                ? checked((int)Dims("class_embedding.weight", 2)[0] - 1) : 0,
            NormGroups = Groups(graph, source), ScaleShift = embedding[^1] == 2 * firstOut,
            LearnSigma = Dims("conv_out.weight", 4)[0] == 2 * inChannels,
        };
    }

    /// <summary>
    /// The group count of the GroupNorms: the second entry of the reshape target ([0, G, −1(, 0)]) that the first
    /// residual block's norm applies to conv_in's output, in either exporter's form.
    /// </summary>
    private static int Groups(GraphProto graph, string source)
    {
        var constants = graph.Initializer.Where(i => i.DataType == (int)TensorProto.Types.DataType.Int64)
            .ToDictionary(i => i.Name);
        var convIn = graph.Node.FirstOrDefault(n => n.OpType == "Conv" && n.Input.Count > 1
            && n.Input[1] == "conv_in.weight");
        var target = convIn is null ? null : graph.Node
            .Where(n => n.OpType == "Reshape" && n.Input[0] == convIn.Output[0] && constants.ContainsKey(n.Input[1]))
            .Select(n => constants[n.Input[1]]).FirstOrDefault();
        long[] shape = target is null || target.DataLocation == TensorProto.Types.DataLocation.External ? []
            : Tensors.ToInt64s(target);
        if (shape.Length is not (3 or 4) || shape[1] is < 1 or > UNetConfig.MaxWidth)
            throw new DiffusionException($"{source}: no GroupNorm reshape of conv_in's output to read the group " +
                "count from: not a UNet this trainer exported.");
        return (int)shape[1];
    }

    /// <summary>Copies each parameter from its initializer (Linear weights stored transposed: "…weight_t").
    /// </summary>
    private static void Load(UNet net, Dictionary<string, TensorProto> weights, string source)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in net.named_parameters())
        {
            bool transposed = !weights.ContainsKey(name) && weights.ContainsKey(name + "_t");
            if (!weights.TryGetValue(transposed ? name + "_t" : name, out var stored))
                throw new DiffusionException($"{source}: no initializer for the parameter '{name}'.");
            float[] values;
            try { values = Tensors.ToFloats(stored); } // refuses other types and external data
            catch (ArgumentException e) { throw new DiffusionException($"{source}: {e.Message}"); }
            long[] shape = [.. parameter.shape];
            if (values.Length != parameter.numel() || transposed && (shape.Length != 2
                    || !stored.Dims.SequenceEqual([shape[1], shape[0]])))
                throw new DiffusionException($"{source}: '{stored.Name}' has shape " +
                    $"[{string.Join(", ", stored.Dims)}] " +
                    $"where the architecture read from the file needs [{string.Join(", ", shape)}].");
            using var value = tensor(values, transposed ? [shape[1], shape[0]] : shape);
            parameter.copy_(transposed ? value.t() : value);
        }
    }

    /// <summary>The largest |Δ| between the two graphs' outputs on the same inputs.</summary>
    private static double MaxOutputDifference(byte[] first, byte[] second, UNetConfig c)
    {
        const int batch = 4;
        int size = c.ImageSize, pixels = c.InChannels * size * size;
        var random = new Random(20261208);
        var x = Enumerable.Range(0, batch * pixels).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        float[] t = [0, 250.5f, 600, 999];
        long[] labels = [.. Enumerable.Range(0, batch).Select(i => (long)(c.NumClasses == 0 ? 0 : i == batch - 1
            ? c.NumClasses : i % c.NumClasses))];
        float[] Run(byte[] model)
        {
            using var session = new InferenceSession(model);
            using var sample = OrtValue.CreateTensorValueFromMemory(x, [batch, c.InChannels, size, size]);
            using var timestep = OrtValue.CreateTensorValueFromMemory(t, [batch]);
            using var label = OrtValue.CreateTensorValueFromMemory(labels, [batch]);
            var names = new List<string> { "sample", "timestep" };
            var values = new List<OrtValue> { sample, timestep };
            if (c.NumClasses > 0) { names.Add("class_labels"); values.Add(label); }
            using var options = new RunOptions();
            using var outputs = session.Run(options, names, values, session.OutputNames);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        var a = Run(first);
        var b = Run(second);
        if (a.Length != b.Length) return double.PositiveInfinity;
        var difference = new float[a.Length];
        TensorPrimitives.Subtract(a, b, difference);
        return TensorPrimitives.MaxMagnitude(difference) is var m && float.IsFinite(m) ? Math.Abs(m)
            : double.PositiveInfinity;
    }
}
