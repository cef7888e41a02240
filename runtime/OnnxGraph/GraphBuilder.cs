using Onnx;

namespace Diffusion.OnnxGraph;

/// <summary>
/// Builds an ONNX graph node by node. Every method returns the <see cref="Value"/> it produced, so graphs read
/// as the arithmetic they compute: <c>g.Mul(g.Sqrt(a), x)</c>.
/// </summary>
public sealed class GraphBuilder
{
    private readonly GraphProto _graph;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private int _counter;

    /// <summary>Starts an empty graph called <paramref name="name"/>.</summary>
    public GraphBuilder(string name) => _graph = new GraphProto { Name = name };

    /// <summary>The graph built so far.</summary>
    public GraphProto Graph => _graph;

    /// <summary>Declares a graph input of the given element type and shape.</summary>
    public Value Input(string name, TensorProto.Types.DataType type, params Dim[] shape)
    {
        Claim(name);
        _graph.Input.Add(ValueInfo(name, type, shape));
        return new Value(name);
    }

    /// <summary>
    /// Declares <paramref name="value"/> as a graph output, renamed to <paramref name="name"/> through an Identity
    /// node.
    /// </summary>
    public Value Output(Value value, string name, TensorProto.Types.DataType type, params Dim[] shape)
    {
        if (value.Name != name) value = Node("Identity", [value], name);
        _graph.Output.Add(ValueInfo(name, type, shape));
        return value;
    }

    /// <summary>Adds a constant tensor stored in the graph's initializers.</summary>
    public Value Initializer(TensorProto tensor)
    {
        Claim(tensor.Name);
        return AddInitializer(tensor);
    }

    private Value AddInitializer(TensorProto tensor)
    {
        _graph.Initializer.Add(tensor);
        return new Value(tensor.Name);
    }

    /// <summary>A float32 initializer.</summary>
    public Value Initializer(string name, ReadOnlySpan<float> data, params long[] shape) =>
        Initializer(Tensors.Float(name, data, shape));

    /// <summary>An int64 initializer.</summary>
    public Value Initializer(string name, ReadOnlySpan<long> data, params long[] shape) =>
        Initializer(Tensors.Int64(name, data, shape));

    /// <summary>A float32 scalar constant.</summary>
    public Value Scalar(float value, string? name = null) =>
        name is null ? AddInitializer(Tensors.Float(Fresh("const"), [value]))
            : Initializer(Tensors.Float(name, [value]));

    /// <summary>A float32 constant tensor under a fresh name.</summary>
    public Value Constant(ReadOnlySpan<float> data, params long[] shape) =>
        AddInitializer(Tensors.Float(Fresh("const"), data, shape));

    /// <summary>A 1-D int64 constant (shapes, axes, indices).</summary>
    public Value Ints(params long[] values) => AddInitializer(Tensors.Int64(Fresh("ints"), values, values.Length));

    /// <summary>Adds one node of operator <paramref name="op"/> and returns its (first) output.</summary>
    public Value Node(string op, Value[] inputs, string? output = null, params AttributeProto[] attributes) =>
        NodeN(op, inputs, 1, output is null ? null : [output], attributes)[0];

    /// <summary>Adds one node with <paramref name="outputCount"/> outputs.</summary>
    public Value[] NodeN(string op, Value[] inputs, int outputCount, string[]? outputs = null,
        params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Fresh(op) };
        foreach (var i in inputs) node.Input.Add(i.Name);
        var result = new Value[outputCount];
        for (int k = 0; k < outputCount; k++)
        {
            var name = outputs?[k] ?? Fresh(op.ToLowerInvariant());
            if (outputs is not null) Claim(name);
            node.Output.Add(name);
            result[k] = new Value(name);
        }
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return result;
    }

    /// <summary>a + b (broadcasting).</summary>
    public Value Add(Value a, Value b) => Node("Add", [a, b]);
    /// <summary>a − b (broadcasting).</summary>
    public Value Sub(Value a, Value b) => Node("Sub", [a, b]);
    /// <summary>a · b (broadcasting).</summary>
    public Value Mul(Value a, Value b) => Node("Mul", [a, b]);
    /// <summary>a / b (broadcasting).</summary>
    public Value Div(Value a, Value b) => Node("Div", [a, b]);
    /// <summary>√a.</summary>
    public Value Sqrt(Value a) => Node("Sqrt", [a]);
    /// <summary>⌊a⌋.</summary>
    public Value Floor(Value a) => Node("Floor", [a]);
    /// <summary>Elementwise minimum.</summary>
    public Value Min(Value a, Value b) => Node("Min", [a, b]);
    /// <summary>Elementwise maximum.</summary>
    public Value Max(Value a, Value b) => Node("Max", [a, b]);
    /// <summary>Element type conversion.</summary>
    public Value Cast(Value a, TensorProto.Types.DataType to) => Node("Cast", [a], null, Attr.Int("to", (long)to));
    /// <summary>Gathers entries of <paramref name="data"/> along <paramref name="axis"/>.</summary>
    public Value Gather(Value data, Value indices, long axis = 0) =>
        Node("Gather", [data, indices], null, Attr.Int("axis", axis));
    /// <summary>Reshapes to <paramref name="shape"/> (0 keeps a dimension, −1 infers one).</summary>
    public Value Reshape(Value a, params long[] shape) => Node("Reshape", [a, Ints(shape)]);

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, Dim[] shape)
    {
        var tensorShape = new TensorShapeProto();
        foreach (var d in shape)
            tensorShape.Dim.Add(d.Symbol is not null
                ? new TensorShapeProto.Types.Dimension { DimParam = d.Symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = d.Size!.Value });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto
            {
                TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = tensorShape }
            },
        };
    }

    private void Claim(string name)
    {
        if (!_names.Add(name))
            throw new ArgumentException($"The graph already has a value named '{name}'.", nameof(name));
    }

    /// <summary>A name no value of the graph has yet, reserved.</summary>
    private string Fresh(string prefix)
    {
        string name;
        do name = $"{prefix}_{_counter++}"; while (_names.Contains(name));
        _names.Add(name);
        return name;
    }
}
