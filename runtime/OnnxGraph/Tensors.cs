using Google.Protobuf;
using Onnx;

namespace Diffusion.OnnxGraph;

/// <summary>Builds TensorProto values (initializers and constants) from managed arrays.</summary>
public static class Tensors
{
    /// <summary>A float32 tensor of the given shape, stored as raw little-endian bytes.</summary>
    public static TensorProto Float(string name, ReadOnlySpan<float> data, params long[] shape)
    {
        CheckCount(name, data.Length, shape);
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(shape);
        t.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
        return t;
    }

    /// <summary>An int64 tensor of the given shape, stored as raw little-endian bytes.</summary>
    public static TensorProto Int64(string name, ReadOnlySpan<long> data, params long[] shape)
    {
        CheckCount(name, data.Length, shape);
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.AddRange(shape);
        t.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
        return t;
    }

    private static void CheckCount(string name, int count, long[] shape)
    {
        long expected = 1;
        foreach (var d in shape) expected *= d;
        if (expected != count)
            throw new ArgumentException($"Tensor '{name}': {count} values do not " +
                $"fill shape [{string.Join(",", shape)}] ({expected} values).");
    }
}
