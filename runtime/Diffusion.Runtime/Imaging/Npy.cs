using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Diffusion.Runtime.Imaging;

/// <summary>A float32 array with its shape, as stored in a .npy file.</summary>
public sealed record NpyArray(float[] Data, int[] Shape);

/// <summary>NumPy's .npy format (version 1.0/2.0), little-endian float32 ('&lt;f4'), C order.</summary>
public static partial class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>
    /// Writes <paramref name="data"/> with <paramref name="shape"/> to <paramref name="path"/> atomically (streamed: no
    /// second copy in memory).
    /// </summary>
    public static void Save(string path, ReadOnlyMemory<float> data, params int[] shape)
    {
        long count = 1;
        foreach (var d in shape) count = d < 0 ? -1 : checked(count * d);
        if (count != data.Length)
            throw new ArgumentException($"Shape [{string.Join(",", shape)}] does not hold {data.Length} values.");
        AtomicFile.Write(path, s => Write(s, data.Span, shape));
    }

    private static void Write(Stream stream, ReadOnlySpan<float> data, int[] shape)
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
        var buffer = new byte[1 << 16];
        for (int i = 0; i < data.Length; i += buffer.Length / 4)
        {
            int n = Math.Min(buffer.Length / 4, data.Length - i);
            if (BitConverter.IsLittleEndian) MemoryMarshal.AsBytes(data.Slice(i, n)).CopyTo(buffer);
            else for (int k = 0; k < n; k++) BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(4 * k),
                data[i + k]);
            stream.Write(buffer, 0, 4 * n);
        }
    }

    /// <summary>
    /// Reads a float32 (or float64, converted) .npy file; errors name the file and what is wrong. The header is read
    /// and checked first — the shape against <paramref name="trailingShape"/> (the dimensions after the first, e.g.
    /// [C,H,W] of a model) and the value count against one array — before the data is read.
    /// </summary>
    public static NpyArray Load(string path, params int[] trailingShape)
    {
        if (!File.Exists(path)) throw new DiffusionException($"'{path}' does not exist.");
        try
        {
            InputFile.CheckRegular(path, $"'{path}'");
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read);
            return Read(file, path, trailingShape);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusionException($"Cannot read '{path}': {e.Message}", e);
        }
    }

    private static NpyArray Read(FileStream file, string path, int[] trailingShape)
    {
        Span<byte> preamble = stackalloc byte[12];
        if (file.ReadAtLeast(preamble, 10, throwOnEndOfStream: false) < 10 || !preamble[..6].SequenceEqual(Magic))
            throw new DiffusionException($"'{path}' is not a .npy file (bad magic).");
        int major = preamble[6];
        if (major is not (1 or 2 or 3))
            throw new DiffusionException($"'{path}': .npy format version {major} is not supported.");
        long headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(preamble[8..])
            : BinaryPrimitives.ReadUInt32LittleEndian(preamble[8..]);
        long start = major == 1 ? 10 : 12;
        if (headerLength > 1 << 16 || start + headerLength > file.Length)
            throw new DiffusionException($"'{path}' is truncated or damaged in its header (it claims " +
                $"{headerLength} header bytes).");
        file.Position = start;
        var headerBytes = new byte[headerLength];
        file.ReadExactly(headerBytes);
        var header = Encoding.Latin1.GetString(headerBytes);
        var descr = DescrPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        var order = FortranPattern().Match(header);
        if (!descr.Success || !shapeMatch.Success || !order.Success)
            throw new DiffusionException($"'{path}': unreadable .npy header: {Printable.Of(header)}");
        if (order.Groups[1].Value == "True")
            throw new DiffusionException($"'{path}': Fortran-ordered arrays are not supported; save with C order.");
        int elementSize = descr.Groups[1].Value switch
        {
            "<f4" => 4, "<f8" => 8,
            var other =>
                throw new DiffusionException($"'{path}': dtype '{Printable.Of(other)}' is not supported; expected " +
                    $"float32 ('<f4') or float64 ('<f8')."),
        };
        var parts = shapeMatch.Groups[1].Value.Split(',',
            StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var shape = new int[parts.Length];
        long count = 1;
        for (int i = 0; i < parts.Length; i++)
        {
            if (!long.TryParse(parts[i], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var d) || d > Array.MaxLength)
                throw new DiffusionException($"'{path}': shape entry '{Printable.Of(parts[i])}' is not a dimension " +
                    $"(a whole number below 2³¹).");
            shape[i] = (int)d;
            count = Math.Min(count * d, long.MaxValue / 2 / Array.MaxLength); // saturates instead of overflowing
        }
        if (trailingShape.Length > 0
            && (shape.Length != trailingShape.Length + 1 || !shape.AsSpan(1).SequenceEqual(trailingShape)))
            throw new DiffusionException($"'{path}' has shape ({string.Join(",", shape)}); expected " +
                $"(N,{string.Join(",", trailingShape)}).");
        if (count > Array.MaxLength)
            throw new DiffusionException($"'{path}': shape ({string.Join(",", shape)}) holds more values than fit in " +
                $"memory at once (2³¹).");
        long offset = start + headerLength;
        if (offset + count * elementSize != file.Length)
            throw new DiffusionException($"'{path}': shape ({string.Join(",", shape)}) needs {count * elementSize} " +
                $"data bytes but the file holds {file.Length - offset}; is it truncated?");
        var data = new float[count];
        var buffer = new byte[1 << 16];
        for (long i = 0; i < count;)
        {
            int n = (int)Math.Min(buffer.Length / elementSize, count - i);
            file.ReadExactly(buffer, 0, n * elementSize);
            for (int k = 0; k < n; k++)
                data[i + k] = elementSize == 4 ? BinaryPrimitives.ReadSingleLittleEndian(buffer.AsSpan(4 * k))
                    : (float)BinaryPrimitives.ReadDoubleLittleEndian(buffer.AsSpan(8 * k));
            i += n;
        }
        return new NpyArray(data, shape);
    }

    [GeneratedRegex(@"'descr':\s*'([^']+)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();

    [GeneratedRegex(@"'fortran_order':\s*(True|False)")]
    private static partial Regex FortranPattern();
}
