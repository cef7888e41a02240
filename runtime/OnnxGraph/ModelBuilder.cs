using Google.Protobuf;
using Onnx;

namespace Diffusion.OnnxGraph;

/// <summary>Wraps a graph into a model: IR version, opset imports, producer and metadata.</summary>
public sealed class ModelBuilder
{
    /// <summary>The ONNX IR version written (ONNX 1.12's).</summary>
    public const long IrVersion = 8;

    /// <summary>The default-domain opset written unless another is asked for.</summary>
    public const long DefaultOpset = 17;

    private readonly GraphBuilder _graph;
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);
    private long _opset = DefaultOpset;
    private string _docString = "";

    /// <summary>Starts a model around <paramref name="graph"/>.</summary>
    public ModelBuilder(GraphBuilder graph) => _graph = graph;

    /// <summary>Sets the default-domain opset version.</summary>
    public ModelBuilder Opset(long version) { _opset = version; return this; }

    /// <summary>Adds a <c>metadata_props</c> entry.</summary>
    public ModelBuilder Metadata(string key, string value) { _metadata[key] = value; return this; }

    /// <summary>Sets the model's doc string.</summary>
    public ModelBuilder Doc(string text) { _docString = text; return this; }

    /// <summary>The finished model.</summary>
    public ModelProto Build()
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "Diffusion for .NET",
            ProducerVersion = typeof(ModelBuilder).Assembly.GetName().Version?.ToString() ?? "0",
            DocString = _docString,
            Graph = _graph.Graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = _opset });
        foreach (var (k, v) in _metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    /// <summary>The finished model serialized as ONNX bytes.</summary>
    public byte[] ToBytes() => Build().ToByteArray();

    /// <summary>Writes the model to <paramref name="path"/> through a temporary file renamed into place.</summary>
    public void Save(string path)
    {
        var full = Path.GetFullPath(path);
        var tmp = full + ".tmp-" + Environment.ProcessId;
        File.WriteAllBytes(tmp, ToBytes());
        File.Move(tmp, full, overwrite: true);
    }
}
