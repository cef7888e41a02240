using System.Buffers.Binary;
using System.IO.Compression;

namespace Diffusion.Runtime.Imaging;

/// <summary>An 8-bit image: Height × Width × Channels bytes, interleaved (1 = gray, 3 = RGB, 4 = RGBA).</summary>
public sealed record Image8(int Width, int Height, int Channels, byte[] Pixels);

/// <summary>A small PNG codec: 8-bit gray / RGB / RGBA, non-interlaced, zlib via System.IO.Compression.</summary>
public static class Png
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>Encodes <paramref name="image"/> as PNG.</summary>
    public static void Write(Stream stream, Image8 image)
    {
        byte colorType = image.Channels switch
        {
            1 => 0, 3 => 2, 4 => 6,
            _ => throw new ArgumentException($"PNG output supports 1, 3 or 4 channels, not {image.Channels}."),
        };
        if (image.Pixels.Length != image.Width * image.Height * image.Channels)
            throw new ArgumentException("Pixel buffer does not match the image size.");
        stream.Write(Signature);
        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, image.Width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], image.Height);
        header[8] = 8; header[9] = colorType; header[10] = 0; header[11] = 0; header[12] = 0;
        Chunk(stream, "IHDR", header);
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        {
            int stride = image.Width * image.Channels;
            for (int y = 0; y < image.Height; y++)
            {
                z.WriteByte(0); // filter: none
                z.Write(image.Pixels, y * stride, stride);
            }
        }
        Chunk(stream, "IDAT", raw.GetBuffer().AsSpan(0, (int)raw.Length));
        Chunk(stream, "IEND", []);
    }

    /// <summary>Writes <paramref name="image"/> to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, Image8 image) => AtomicFile.Write(path, s => Write(s, image));

    /// <summary>Reads an 8-bit non-interlaced gray / gray+alpha / RGB / RGBA / palette PNG; errors name the file and the problem.</summary>
    public static Image8 Read(string path)
    {
        byte[] data;
        try { data = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DiffusionException($"Cannot read image '{path}': {e.Message}", e); }
        return Decode(data, path);
    }

    /// <summary>Decodes PNG bytes; <paramref name="source"/> names them in errors.</summary>
    public static Image8 Decode(ReadOnlySpan<byte> data, string source)
    {
        if (data.Length < 8 || !data[..8].SequenceEqual(Signature)) throw new DiffusionException($"'{source}' is not a PNG file (bad signature).");
        int pos = 8, width = 0, height = 0, colorType = -1;
        byte[]? palette = null;
        using var idat = new MemoryStream();
        while (true)
        {
            if (pos + 8 > data.Length) throw new DiffusionException($"'{source}' is truncated at byte {pos} (expected a chunk header).");
            int length = BinaryPrimitives.ReadInt32BigEndian(data[pos..]);
            var type = System.Text.Encoding.ASCII.GetString(data.Slice(pos + 4, 4));
            if (length < 0 || pos + 12 + (long)length > data.Length) throw new DiffusionException($"'{source}' is truncated in chunk '{type}' at byte {pos}.");
            var body = data.Slice(pos + 8, length);
            pos += 12 + length;
            switch (type)
            {
                case "IHDR":
                    width = BinaryPrimitives.ReadInt32BigEndian(body);
                    height = BinaryPrimitives.ReadInt32BigEndian(body[4..]);
                    if (body[8] != 8) throw new DiffusionException($"'{source}': only 8-bit PNGs are supported (this one has {body[8]} bits per sample).");
                    colorType = body[9];
                    if (body[12] != 0) throw new DiffusionException($"'{source}': interlaced PNGs are not supported.");
                    break;
                case "PLTE": palette = body.ToArray(); break;
                case "IDAT": idat.Write(body); break;
                case "IEND": return Unfilter(idat.ToArray(), width, height, colorType, palette, source);
            }
        }
    }

    private static Image8 Unfilter(byte[] compressed, int width, int height, int colorType, byte[]? palette, string source)
    {
        int channels = colorType switch
        {
            0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4,
            _ => throw new DiffusionException($"'{source}': PNG color type {colorType} is not supported."),
        };
        if (width <= 0 || height <= 0) throw new DiffusionException($"'{source}': missing or invalid IHDR.");
        int stride = width * channels;
        var raw = new byte[(stride + 1) * height];
        try
        {
            using var z = new ZLibStream(new MemoryStream(compressed), CompressionMode.Decompress);
            z.ReadExactly(raw);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw new DiffusionException($"'{source}': the image data is corrupt or truncated ({e.Message}).", e);
        }
        var pixels = new byte[stride * height];
        for (int y = 0; y < height; y++)
        {
            byte filter = raw[y * (stride + 1)];
            var line = raw.AsSpan(y * (stride + 1) + 1, stride);
            var outLine = pixels.AsSpan(y * stride, stride);
            var prior = y > 0 ? pixels.AsSpan((y - 1) * stride, stride) : new byte[stride];
            for (int i = 0; i < stride; i++)
            {
                int a = i >= channels ? outLine[i - channels] : 0, b = prior[i], c = i >= channels ? prior[i - channels] : 0;
                outLine[i] = (byte)(line[i] + filter switch
                {
                    0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, 4 => Paeth(a, b, c),
                    _ => throw new DiffusionException($"'{source}': unknown PNG filter {filter} on row {y}."),
                });
            }
        }
        if (colorType == 3)
        {
            if (palette is null) throw new DiffusionException($"'{source}': palette image without PLTE chunk.");
            var rgb = new byte[width * height * 3];
            for (int i = 0; i < pixels.Length; i++)
            {
                int p = pixels[i] * 3;
                if (p + 2 >= palette.Length) throw new DiffusionException($"'{source}': palette index {pixels[i]} out of range.");
                rgb[3 * i] = palette[p]; rgb[3 * i + 1] = palette[p + 1]; rgb[3 * i + 2] = palette[p + 2];
            }
            return new Image8(width, height, 3, rgb);
        }
        if (colorType == 4) // gray + alpha: keep gray
        {
            var gray = new byte[width * height];
            for (int i = 0; i < gray.Length; i++) gray[i] = pixels[2 * i];
            return new Image8(width, height, 1, gray);
        }
        return new Image8(width, height, channels, pixels);
    }

    private static readonly uint[] CrcTable = BuildCrcTable();

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }

    /// <summary>Continues the PNG CRC-32 (ISO 3309) over <paramref name="bytes"/>.</summary>
    private static uint Crc32(uint crc, ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void Chunk(Stream stream, string type, ReadOnlySpan<byte> body)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, body.Length);
        System.Text.Encoding.ASCII.GetBytes(type, head[4..]);
        stream.Write(head);
        stream.Write(body);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, Crc32(Crc32(0xFFFFFFFF, head[4..]), body) ^ 0xFFFFFFFF);
        stream.Write(tail);
    }
}
