using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;

namespace Diffusion.Runtime.Imaging;

/// <summary>A float32 array with its shape, as stored in a .npy file.</summary>
public sealed record NpyArray(float[] Data, int[] Shape);

/// <summary>NumPy's .npy format (version 1.0/2.0), little-endian float32 ('&lt;f4'), C order.</summary>
public static partial class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Writes <paramref name="data"/> with <paramref name="shape"/> to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, ReadOnlySpan<float> data, params int[] shape)
    {
        long count = 1;
        foreach (var d in shape) count *= d;
        if (count != data.Length) throw new ArgumentException($"Shape [{string.Join(",", shape)}] does not hold {data.Length} values.");
        var bytes = new byte[data.Length * 4];
        for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), data[i]);
        AtomicFile.Write(path, s => Write(s, bytes, shape));
    }

    private static void Write(Stream stream, byte[] payload, int[] shape)
    {
        var dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        var header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        int total = 10 + header.Length + 1;
        header += new string(' ', (64 - total % 64) % 64) + "\n";
        stream.Write(Magic);
        stream.WriteByte(1);
        stream.WriteByte(0);
        Span<byte> len = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
        stream.Write(len);
        stream.Write(Encoding.ASCII.GetBytes(header));
        stream.Write(payload);
    }

    /// <summary>Reads a float32 (or float64, converted) .npy file; errors name the file and what is wrong.</summary>
    public static NpyArray Load(string path)
    {
        byte[] bytes;
        if (!File.Exists(path)) throw new DiffusionException($"'{path}' does not exist.");
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DiffusionException($"Cannot read '{path}': {e.Message}", e); }
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
            throw new DiffusionException($"'{path}' is not a .npy file (bad magic).");
        int major = bytes[6];
        int headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)) : (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        int start = major == 1 ? 10 : 12;
        if (start + headerLength > bytes.Length) throw new DiffusionException($"'{path}' is truncated in its header.");
        var header = Encoding.ASCII.GetString(bytes, start, headerLength);
        var descr = DescrPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !shapeMatch.Success) throw new DiffusionException($"'{path}': unreadable .npy header: {header.Trim()}");
        if (header.Contains("'fortran_order': True")) throw new DiffusionException($"'{path}': Fortran-ordered arrays are not supported; save with C order.");
        int elementSize = descr.Groups[1].Value switch
        {
            "<f4" => 4, "<f8" => 8,
            var other => throw new DiffusionException($"'{path}': dtype '{other}' is not supported; expected float32 ('<f4') or float64 ('<f8')."),
        };
        var shape = shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        long count = shape.Aggregate(1L, (a, b) => a * b);
        int offset = start + headerLength;
        if (offset + count * elementSize != bytes.Length)
            throw new DiffusionException($"'{path}': shape ({string.Join(",", shape)}) needs {count * elementSize} data bytes but the file holds {bytes.Length - offset}; is it truncated?");
        var data = new float[count];
        for (int i = 0; i < count; i++)
            data[i] = elementSize == 4
                ? BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(offset + 4 * i))
                : (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(offset + 8 * i));
        return new NpyArray(data, shape);
    }

    [GeneratedRegex(@"'descr':\s*'([^']+)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
