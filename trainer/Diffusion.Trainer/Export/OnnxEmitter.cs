using Diffusion.OnnxGraph;
using Diffusion.Trainer.Torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.Trainer.Export;

/// <summary>Where modules write their ONNX nodes: the graph builder plus parameters turned into initializers.</summary>
public sealed class OnnxEmitter(GraphBuilder graph)
{
    /// <summary>The graph under construction.</summary>
    public GraphBuilder G { get; } = graph;

    /// <summary>A parameter as a float32 initializer of the same shape (optionally reshaped).</summary>
    public Value Weight(string name, Tensor parameter, params long[] shape)
    {
        var data = parameter.ToFloatArray();
        return G.Initializer(name, data, shape.Length > 0 ? shape : parameter.Shape);
    }

    /// <summary>A constant float32 tensor.</summary>
    public Value Constant(string name, float[] data, params long[] shape) => G.Initializer(name, data, shape);

    /// <summary>x·σ(x).</summary>
    public Value Silu(Value x) => G.Mul(x, G.Node("Sigmoid", [x]));

    /// <summary>The element type of float tensors.</summary>
    public static DataType Float => DataType.Float;
}
