using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.OnnxGraph;

/// <summary>Builds TensorProto values (initializers and constants) from managed arrays, and reads them back.</summary>
public static class Tensors
{
    /// <summary>A float32 tensor of the given shape, stored as raw little-endian bytes.</summary>
    public static TensorProto Float(string name, ReadOnlySpan<float> data, params long[] shape) =>
        Raw(name, DataType.Float, data, shape);

    /// <summary>An int64 tensor of the given shape, stored as raw little-endian bytes.</summary>
    public static TensorProto Int64(string name, ReadOnlySpan<long> data, params long[] shape) =>
        Raw(name, DataType.Int64, data, shape);

    /// <summary>An int32 tensor of the given shape, stored as raw little-endian bytes.</summary>
    public static TensorProto Int32(string name, ReadOnlySpan<int> data, params long[] shape) =>
        Raw(name, DataType.Int32, data, shape);

    /// <summary>An int8 tensor of the given shape, stored as raw bytes.</summary>
    public static TensorProto Int8(string name, ReadOnlySpan<sbyte> data, params long[] shape) =>
        Raw(name, DataType.Int8, data, shape);

    /// <summary>A uint8 tensor of the given shape, stored as raw bytes.</summary>
    public static TensorProto UInt8(string name, ReadOnlySpan<byte> data, params long[] shape) =>
        Raw(name, DataType.Uint8, data, shape);

    /// <summary>The values of a float32 tensor, stored as raw bytes or as <c>float_data</c>.</summary>
    public static float[] ToFloats(TensorProto tensor) => Values(tensor, DataType.Float, tensor.FloatData);

    /// <summary>The values of an int64 tensor, stored as raw bytes or as <c>int64_data</c>.</summary>
    public static long[] ToInt64s(TensorProto tensor) => Values(tensor, DataType.Int64, tensor.Int64Data);

    private static T[] Values<T>(TensorProto tensor, DataType type, IEnumerable<T> typed) where T : unmanaged
    {
        if (tensor.DataType != (int)type)
            throw new ArgumentException($"Tensor '{tensor.Name}' holds {(DataType)tensor.DataType}, not {type}.");
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
            throw new ArgumentException($"Tensor '{tensor.Name}' keeps its values in an external file.");
        return tensor.RawData.IsEmpty ? typed.ToArray()
            : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(tensor.RawData.Span).ToArray();
    }

    private static TensorProto Raw<T>(string name, DataType type, ReadOnlySpan<T> data, long[] shape)
        where T : unmanaged
    {
        CheckCount(name, data.Length, shape);
        var t = new TensorProto { Name = name, DataType = (int)type };
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
