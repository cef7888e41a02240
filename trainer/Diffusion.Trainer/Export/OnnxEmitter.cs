using Diffusion.OnnxGraph;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.Trainer.Export;

/// <summary>
/// Where modules write their ONNX nodes: the graph builder, the root module's parameters turned into initializers under
/// their dotted names (as named_parameters gives them), and the nodes of TorchSharp's own layers (Conv2d, Linear,
/// GroupNorm, Embedding) with the same arithmetic as their forward.
/// </summary>
public sealed class OnnxEmitter
{
    // Layers by reference (Parameter wrappers are not stable: some layers hand out a new one on every access).
    private readonly Dictionary<nn.Module, string> _modules = new(ReferenceEqualityComparer.Instance);
    // InstanceNormalization's unit scale and zero bias, one pair per group count.
    private readonly Dictionary<long, (Value Scale, Value Bias)> _unitAffine = new();

    /// <summary>The graph under construction.</summary>
    public GraphBuilder G { get; }

    /// <summary>An emitter writing <paramref name="root"/>'s parameters into <paramref name="graph"/>.</summary>
    public OnnxEmitter(GraphBuilder graph, nn.Module root)
    {
        G = graph;
        foreach (var (name, module) in root.named_modules()) _modules[module] = name;
    }

    /// <summary>The element type of float tensors.</summary>
    public static DataType Float => DataType.Float;

    /// <summary>
    /// Parameter <paramref name="name"/> of <paramref name="layer"/> as a float32 initializer (optionally reshaped),
    /// named as in named_parameters.
    /// </summary>
    public Value Weight(nn.Module layer, string name, Tensor value, params long[] shape)
    {
        if (!_modules.TryGetValue(layer, out var path))
            throw new InvalidOperationException($"A {layer.GetType().Name} is not registered under the exported " +
                $"module; register it (register_module) so that it is named and saved.");
        using var scope = NewDisposeScope();
        var data = value.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
        return G.Initializer(path.Length == 0 ? name : $"{path}.{name}", data, shape.Length > 0 ? shape : value.shape);
    }

    /// <summary>x·σ(x).</summary>
    public Value Silu(Value x) => G.Mul(x, G.Node("Sigmoid", [x]));

    /// <summary>nn.Conv2d as ONNX Conv (square or not; groups and dilation 1).</summary>
    public Value Conv(Conv2d conv, Value x)
    {
        if (conv.groups != 1 || conv.dilation.Any(d => d != 1) || conv.padding_type is not null || conv.padding is null)
            throw new NotSupportedException("The exporter writes Conv2d with groups = 1, dilation " +
                "= 1 and explicit padding.");
        long[] pads = conv.padding.Length == 1 ? [conv.padding[0], conv.padding[0], conv.padding[0], conv.padding[0]]
            : [conv.padding[0], conv.padding[1], conv.padding[0], conv.padding[1]];
        Value[] inputs = conv.bias is null ? [x, Weight(conv, "weight", conv.weight!)]
            : [x, Weight(conv, "weight", conv.weight!), Weight(conv, "bias", conv.bias)];
        return G.Node("Conv", inputs, null,
            Attr.Ints("kernel_shape", Pair(conv.kernel_size)), Attr.Ints("strides", Pair(conv.stride)),
                Attr.Ints("pads", pads));
    }

    private static long[] Pair(long[] values) => values.Length == 1 ? [values[0], values[0]] : values;

    /// <summary>nn.Linear as x·Wᵀ + b: MatMul with the transposed weight (stored transposed), then Add.</summary>
    public Value Linear(Linear linear, Value x)
    {
        using var scope = NewDisposeScope();
        var product = G.Node("MatMul", [x, Weight(linear, "weight_t", linear.weight!.t())]);
        return linear.bias is null ? product : G.Add(product, Weight(linear, "bias", linear.bias));
    }

    /// <summary>
    /// nn.GroupNorm of a [B, C, H, W] tensor: reshape to [B, G, (C/G)·H, W], InstanceNormalization over each group's
    /// last two axes (unit scale, zero bias: the biased variance, as GroupNorm's), reshape back to [B, C, H, W], the
    /// per-channel affine. Opset 17 has no GroupNormalization; ONNX Runtime runs InstanceNormalization as one kernel
    /// where a ReduceMean/Sub/Mul/Sqrt/Div chain took seven, and both reshapes keep W by a 0 in their target, so that no
    /// Shape node is needed to restore the input's shape (PyTorch's exporter writes Shape → Reshape).
    /// </summary>
    public Value GroupNorm(GroupNorm norm, Value x)
    {
        long groups = norm.num_groups;
        if (!_unitAffine.TryGetValue(groups, out var unit))
            _unitAffine[groups] = unit = (G.Constant(Enumerable.Repeat(1f, (int)groups).ToArray(), groups),
                G.Constant(new float[groups], groups));
        var grouped = G.Reshape(x, 0, groups, -1, 0);
        var normed = G.Node("InstanceNormalization", [grouped, unit.Scale, unit.Bias], null,
            Attr.Float("epsilon", (float)norm.eps));
        if (!norm.affine) return G.Node("Reshape", [normed, G.Node("Shape", [x])]); // C unknown here
        long channels = norm.weight!.shape[0];
        var restored = G.Reshape(normed, 0, channels, -1, 0);
        return G.Add(G.Mul(restored, Weight(norm, "weight", norm.weight!, channels, 1, 1)),
            Weight(norm, "bias", norm.bias!, channels, 1, 1));
    }

    /// <summary>nn.Embedding as Gather of rows.</summary>
    public Value Embedding(Embedding embedding, Value labels) =>
        G.Gather(Weight(embedding, "weight", embedding.weight!), labels);
}
