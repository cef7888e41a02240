using Diffusion.Runtime.Onnx;
using Google.Protobuf;
using Onnx;

namespace Diffusion.Trainer.Export;

/// <summary>
/// An ONNX file this trainer exported, opened to be written again (re-exported, quantized): its graph and its diffusion
/// config. A file that is not ONNX, has no diffusion.config or is quantized already is refused in one line.
/// </summary>
internal static class ExportedModel
{
    /// <summary>
    /// The parsed <paramref name="model"/> and its config; <paramref name="source"/> names it in errors and
    /// <paramref name="needs"/> says what the caller reads from the config ("int8 calibration needs …").
    /// </summary>
    public static (ModelProto Proto, DiffusionConfig Config) Open(byte[] model, string source, string needs)
    {
        ModelProto proto;
        try { proto = ModelProto.Parser.ParseFrom(model); }
        catch (InvalidProtocolBufferException e)
        {
            throw new DiffusionException($"{source}: not an ONNX model ({e.Message}).");
        }
        var json = proto.MetadataProps.FirstOrDefault(p => p.Key == DiffusionConfig.MetadataKey)?.Value
            ?? throw new DiffusionException($"{source}: no {DiffusionConfig.MetadataKey} metadata; {needs} (export " +
                "it with this trainer).");
        var config = DiffusionConfig.Parse(json, $"{source} ({DiffusionConfig.MetadataKey})");
        if (proto.Graph.Node.Any(n => n.OpType is "QuantizeLinear" or "DequantizeLinear" or "QLinearConv"))
            throw new DiffusionException($"{source}: the model is quantized already; give its float32 file.");
        return (proto, config);
    }
}
