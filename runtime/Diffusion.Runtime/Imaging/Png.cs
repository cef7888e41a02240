using System.Buffers.Binary;
using System.IO.Compression;

namespace Diffusion.Runtime.Imaging;

/// <summary>An 8-bit image: Height × Width × Channels bytes, interleaved (1 = gray, 3 = RGB, 4 = RGBA).</summary>
public sealed record Image8(int Width, int Height, int Channels, byte[] Pixels)
{
    /// <summary>
    /// Text stored with the image (PNG tEXt chunks: keyword → text), e.g. the parameters that made it.
    /// </summary>
    public IReadOnlyDictionary<string, string> Text { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// What a PNG input may be, checked from its header before the pixels are inflated: at most <see cref="MaxPixels"/>
/// pixels and <see cref="MaxFileBytes"/> bytes, or exactly <see cref="Width"/>×<see cref="Height"/> where a model
/// fixes the size.
/// </summary>
public sealed record PngLimits
{
    /// <summary>
    /// 16 MP and 64 MiB: larger than any input a model here takes, small enough to decode in bounded memory.
    /// </summary>
    public static PngLimits Default { get; } = new();
    /// <summary>Largest width × height.</summary>
    public long MaxPixels { get; init; } = 1 << 24;
    /// <summary>Largest file (and compressed data) size.</summary>
    public long MaxFileBytes { get; init; } = 64L << 20;
    /// <summary>The width the image must have, if fixed.</summary>
    public int? Width { get; init; }
    /// <summary>The height the image must have, if fixed.</summary>
    public int? Height { get; init; }
    /// <summary>Who wants that size (for the message), e.g. "model 'm.onnx'".</summary>
    public string? Expecting { get; init; }

    /// <summary>
    /// Whether a whole multiple k×<see cref="Width"/> by k×<see cref="Height"/> (an image enlarged k× for viewing) is
    /// accepted too.
    /// </summary>
    public bool AllowMultiples { get; init; }

    /// <summary>Limits for an input of exactly <paramref name="width"/>×<paramref name="height"/>.</summary>
    public static PngLimits Exactly(int width, int height, string expecting) => new()
    {
        Width = width, Height = height, Expecting = expecting,
    };

    /// <summary>
    /// Limits for an input of <paramref name="width"/>×<paramref name="height"/> or a whole multiple of it (see
    /// <see cref="ImageGrid.Shrink"/>).
    /// </summary>
    public static PngLimits SizeOrMultiple(int width, int height, string expecting) =>
        Exactly(width, height, expecting) with { AllowMultiples = true };

    internal void Check(int width, int height, string source)
    {
        bool exact = (Width is not int w0 || w0 == width) && (Height is not int h0 || h0 == height);
        bool multiple = AllowMultiples && Width is int w1 && Height is int h1 && width % w1 == 0 && height % h1 == 0
            && width / w1 == height / h1 && width / w1 <= 64;
        if (!exact && !multiple)
            throw new DiffusionException($"'{source}' is {width}×{height}; {Expecting ?? "the reader"} " +
                $"needs {Width}×{Height} " +
                    $"images{(AllowMultiples ? " (or a whole multiple, as an enlarged output is)" : "")}.");
        if ((long)width * height > MaxPixels)
            throw new DiffusionException($"'{source}' is {width}×{height} = {(long)width * height:N0} pixels; PNG " +
                $"inputs are limited to {MaxPixels:N0} pixels.");
    }
}

/// <summary>
/// A small PNG codec: 8-bit gray / RGB / RGBA, non-interlaced, zlib via System.IO.Compression; every input checked.
/// </summary>
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
        foreach (var (keyword, text) in image.Text) Chunk(stream, "tEXt", TextChunk(keyword, text));
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

    /// <summary>
    /// A tEXt body: a 1–79 character Latin-1 keyword, a zero byte, Latin-1 text (other characters become '?').
    /// </summary>
    private static byte[] TextChunk(string keyword, string text)
    {
        if (keyword.Length is < 1 or > 79 || keyword.Any(c => c is < ' ' or > '~'))
            throw new ArgumentException($"PNG text keyword '{keyword}' must be 1–79 printable ASCII characters.");
        static byte Latin1(char c) => c is >= ' ' and <= '~' or >= '\u00a0' and <= '\u00ff' or '\n' ? (byte)c
            : (byte)'?';
        return [.. keyword.Select(Latin1), 0, .. text.Select(Latin1)];
    }

    /// <summary>Writes <paramref name="image"/> to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, Image8 image) => AtomicFile.Write(path, s => Write(s, image));

    /// <summary>
    /// Reads an 8-bit non-interlaced gray / gray+alpha / RGB / RGBA / palette PNG; errors name the file and the
    /// problem. The file size and the header's dimensions are checked against <paramref name="limits"/> before anything
    /// large is read or allocated.
    /// </summary>
    public static Image8 Read(string path, PngLimits? limits = null)
    {
        limits ??= PngLimits.Default;
        byte[] data;
        try
        {
            var length = new FileInfo(path).Length;
            if (length > limits.MaxFileBytes)
                throw new DiffusionException($"'{path}' is {length:N0} bytes; PNG inputs are limited " +
                    $"to {limits.MaxFileBytes:N0} bytes.");
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusionException($"Cannot read image '{path}': {e.Message}", e);
        }
        return Decode(data, path, limits);
    }

    /// <summary>
    /// Decodes PNG bytes; <paramref name="source"/> names them in errors. Every chunk's CRC is checked.
    /// </summary>
    public static Image8 Decode(ReadOnlySpan<byte> data, string source, PngLimits? limits = null)
    {
        limits ??= PngLimits.Default;
        if (data.Length < 8 || !data[..8].SequenceEqual(Signature))
            throw new DiffusionException($"'{source}' is not a PNG file (bad signature).");
        int pos = 8, width = 0, height = 0, colorType = -1;
        byte[]? palette = null;
        var text = new Dictionary<string, string>();
        using var idat = new MemoryStream();
        while (true)
        {
            if (pos + 12 > data.Length)
                throw new DiffusionException($"'{source}' is truncated at byte {pos} (expected a chunk).");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            var typeBytes = data.Slice(pos + 4, 4);
            var type = Printable.Of(System.Text.Encoding.Latin1.GetString(typeBytes));
            if (length > int.MaxValue || pos + 12 + (long)length > data.Length)
                throw new DiffusionException($"'{source}' is truncated in chunk '{type}' at byte {pos}.");
            var body = data.Slice(pos + 8, (int)length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(data[(pos + 8 + (int)length)..]);
            if ((Crc32(Crc32(0xFFFFFFFF, typeBytes), body) ^ 0xFFFFFFFF) != crc)
                throw new DiffusionException($"'{source}' is damaged: chunk '{type}' at byte " +
                    $"{pos} fails its CRC check.");
            bool first = pos == 8;
            pos += 12 + (int)length;
            if (first != (type == "IHDR"))
                throw new DiffusionException($"'{source}': the first chunk must be IHDR (and only the first), found " +
                    $"'{type}' at byte {pos - 12 - (int)length}.");
            switch (type)
            {
                case "IHDR":
                    if (body.Length != 13)
                        throw new DiffusionException($"'{source}': IHDR holds {body.Length} " +
                            $"bytes; a PNG header has 13.");
                    uint w = BinaryPrimitives.ReadUInt32BigEndian(body),
                        h = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                    if (w == 0 || h == 0 || w > int.MaxValue || h > int.MaxValue)
                        throw new DiffusionException($"'{source}': invalid image size {w}×{h} in IHDR.");
                    limits.Check((int)w, (int)h, source);
                    (width, height) = ((int)w, (int)h);
                    if (body[8] != 8)
                        throw new DiffusionException($"'{source}': only 8-bit PNGs are supported (this one " +
                            $"has {body[8]} bits per sample).");
                    colorType = body[9];
                    if (colorType is not (0 or 2 or 3 or 4 or 6))
                        throw new DiffusionException($"'{source}': PNG color type {colorType} is not supported.");
                    if (body[10] != 0 || body[11] != 0)
                        throw new DiffusionException($"'{source}': unknown compression or filter method in IHDR.");
                    if (body[12] != 0) throw new DiffusionException($"'{source}': interlaced PNGs are not supported.");
                    break;
                case "PLTE":
                    if (body.Length == 0 || body.Length % 3 != 0 || body.Length > 768)
                        throw new DiffusionException($"'{source}': PLTE holds {body.Length} bytes; a palette has " +
                            $"1…256 RGB entries.");
                    palette = body.ToArray();
                    break;
                case "IDAT":
                    if (idat.Length + body.Length > limits.MaxFileBytes)
                        throw new DiffusionException($"'{source}': the image data exceeds " +
                            $"{limits.MaxFileBytes:N0} bytes.");
                    idat.Write(body);
                    break;
                case "tEXt":
                    int zero = body.IndexOf((byte)0);
                    if (zero is > 0 and < 80 && text.Count < 64)
                        text[System.Text.Encoding.Latin1.GetString(body[..zero])] = System.Text.Encoding.Latin1.GetString(body[(zero + 1)..]);
                    break;
                case "IEND": return Unfilter(idat.ToArray(), width, height, colorType, palette, source) with
                {
                    Text = text,
                };
                default:
                    // bit 5 of the first type byte clear: a critical chunk
                    if ((data[pos - 8 - (int)length] & 0x20) == 0)
                        throw new DiffusionException($"'{source}': unknown critical chunk '{type}'.");
                    break; // ancillary chunks (text, gamma, …) are skipped
            }
        }
    }

    private static Image8 Unfilter(byte[] compressed, int width, int height, int colorType, byte[]? palette,
        string source)
    {
        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        int stride = checked(width * channels); // the limits keep width × height × 4 far below 2³¹
        var raw = new byte[checked((stride + 1) * height)];
        try
        {
            // Inflating stops once the header's size is reached: a decompression bomb cannot grow past it.
            using var z = new ZLibStream(new MemoryStream(compressed), CompressionMode.Decompress);
            z.ReadExactly(raw);
        }
        // IOException: EndOfStream, and zlib's own errors
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new DiffusionException($"'{source}': the image data is corrupt or truncated ({e.Message}).", e);
        }
        var pixels = new byte[stride * height];
        var zeros = new byte[stride];
        for (int y = 0; y < height; y++)
        {
            byte filter = raw[y * (stride + 1)];
            if (filter > 4) throw new DiffusionException($"'{source}': unknown PNG filter {filter} on row {y}.");
            var line = raw.AsSpan(y * (stride + 1) + 1, stride);
            var outLine = pixels.AsSpan(y * stride, stride);
            ReadOnlySpan<byte> prior = y > 0 ? pixels.AsSpan((y - 1) * stride, stride) : zeros;
            for (int i = 0; i < stride; i++)
            {
                int a = i >= channels ? outLine[i - channels] : 0, b = prior[i], c = i >= channels
                    ? prior[i - channels] : 0;
                outLine[i] = (byte)(line[i] + filter switch
                {
                    0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => Paeth(a, b, c),
                });
            }
        }
        if (colorType == 3)
        {
            if (palette is null) throw new DiffusionException($"'{source}': palette image without PLTE chunk.");
            var rgb = new byte[checked(pixels.Length * 3)];
            for (int i = 0; i < pixels.Length; i++)
            {
                int p = pixels[i] * 3;
                if (p + 2 >= palette.Length)
                    throw new DiffusionException($"'{source}': palette index {pixels[i]} out of range.");
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
