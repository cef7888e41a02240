using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Diffusion.Tests;

/// <summary>
/// Hand-made hostile PNG files: broken headers, bombs, bad CRCs (each chunk built with a correct CRC unless asked not
/// to).
/// </summary>
public static class HostileFiles
{
    /// <summary>
    /// A PNG chunk: length, type, body and its CRC (a wrong one if <paramref name="goodCrc"/> is false).
    /// </summary>
    public static byte[] Chunk(string type, ReadOnlySpan<byte> body, bool goodCrc = true)
    {
        var bytes = new byte[12 + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, body.Length);
        Encoding.ASCII.GetBytes(type, bytes.AsSpan(4));
        body.CopyTo(bytes.AsSpan(8));
        uint crc = Crc(bytes.AsSpan(4, 4 + body.Length));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8 + body.Length), goodCrc ? crc : crc ^ 1);
        return bytes;
    }

    private static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return c ^ 0xFFFFFFFF;
    }

    private static byte[] Ihdr(uint width, uint height, byte colorType = 0, int length = 13)
    {
        var body = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(body, width);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(4), height);
        body[8] = 8;
        body[9] = colorType;
        return Chunk("IHDR", body.AsSpan(0, length));
    }

    /// <summary>
    /// A "decompression bomb": zlib data that inflates to <paramref name="rawBytes"/> zeros, compressed to almost
    /// nothing.
    /// </summary>
    private static byte[] ZeroIdat(long rawBytes)
    {
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var zeros = new byte[1 << 20];
            for (long left = rawBytes; left > 0; left -= zeros.Length)
                z.Write(zeros, 0, (int)Math.Min(zeros.Length, left));
        }
        return Chunk("IDAT", compressed.ToArray());
    }

    private static byte[] PngOf(params byte[][] chunks) =>
        [137, 80, 78, 71, 13, 10, 26, 10, .. chunks.SelectMany(c => c), .. Chunk("IEND", [])];

    public static byte[] Png(string name) => name switch
    {
        "short IHDR" => PngOf(Ihdr(8, 8, length: 5)),
        "65536² IHDR" => PngOf(Ihdr(65536, 65536), ZeroIdat(100)),
        "30000² palette bomb" =>
            PngOf(Ihdr(30000, 30000, colorType: 3), Chunk("PLTE", new byte[768]), ZeroIdat(30001L * 300)),
        "46000² gray bomb" => PngOf(Ihdr(46000, 46000), ZeroIdat(46001L * 2000)),
        "bad CRC" =>
            [137, 80, 78, 71, 13, 10, 26, 10, .. Ihdr(4, 4).Take(21), .. Chunk("IDAT", [1, 2, 3], goodCrc: false)],
        "IDAT before IHDR" => PngOf(ZeroIdat(20), Ihdr(4, 4)),
        "zero width" => PngOf(Ihdr(0, 4), ZeroIdat(20)),
        "truncated" => PngOf(Ihdr(4, 4), ZeroIdat(20))[..40],
        "unknown critical chunk" => PngOf(Ihdr(4, 4), Chunk("ABCD", [1]), ZeroIdat(20)),
        "16-bit" => PngOf(Patch(Ihdr(4, 4), 16, 16), ZeroIdat(40)),
        "inflates short" => PngOf(Ihdr(64, 64), ZeroIdat(100)),
        "10000² gray" => PngOf(Ihdr(10000, 10000), ZeroIdat(10001L * 100)),
        _ => throw new ArgumentException(name),
    };

    /// <summary>A chunk with one body byte changed and its CRC recomputed.</summary>
    private static byte[] Patch(byte[] chunk, int offset, byte value)
    {
        var body = chunk.AsSpan(8, chunk.Length - 12).ToArray();
        body[offset - 8] = value;
        return Chunk(Encoding.ASCII.GetString(chunk, 4, 4), body);
    }
}
