using System.Buffers.Binary;
using System.IO.Compression;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Webp;

namespace Diffusion.Runtime.Imaging;

/// <summary>
/// Checks that a file's container is whole before ImageSharp decodes it. ImageSharp 2.1 decodes a cut-off file
/// leniently — the missing rows gray or black — which would hand a model a silently wrong image, and its PNG reader
/// fails on some malformed headers with exceptions that are not its format errors. So: PNG chunks are walked (IHDR
/// first and 13 bytes long, every CRC, no unknown critical chunk, IDAT present, IEND reached, the image data as long as
/// the header declares); a JPEG must have its end-of-image marker after its
/// first scan; a WebP its whole RIFF body; a GIF its trailer; a BMP and a TGA sane header fields and all their pixels
/// (a TGA's run-length packets covering the image exactly).
/// </summary>
internal static class ImageContainer
{
    private static readonly byte[] PngSignature = [137, 80, 78, 71, 13, 10, 26, 10];

    public static void Check(ReadOnlySpan<byte> data, IImageFormat format, string source)
    {
        if (format == PngFormat.Instance) CheckPng(data, source);
        else if (format == JpegFormat.Instance) CheckJpeg(data, source);
        else if (format == WebpFormat.Instance) CheckWebp(data, source);
        else if (format == GifFormat.Instance) CheckGif(data, source);
        else if (format == BmpFormat.Instance) CheckBmp(data, source);
        else if (format == TgaFormat.Instance) CheckTga(data, source);
    }

    private static DiffusionException Damaged(string source, string problem) => new($"'{source}' {problem}");

    private static void CheckPng(ReadOnlySpan<byte> data, string source)
    {
        if (data.Length < 8 || !data[..8].SequenceEqual(PngSignature))
            throw Damaged(source, "is not a PNG file (bad signature).");
        bool pixels = false;
        for (int pos = 8; ;)
        {
            if (pos + 12 > data.Length)
                throw Damaged(source, $"is truncated at byte {pos} (expected a chunk; no IEND).");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            var typeBytes = data.Slice(pos + 4, 4);
            var type = Printable.Of(System.Text.Encoding.Latin1.GetString(typeBytes));
            if (length > int.MaxValue || pos + 12 + (long)length > data.Length)
                throw Damaged(source, $"is truncated in chunk '{type}' at byte {pos}.");
            var body = data.Slice(pos + 8, (int)length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(data[(pos + 8 + (int)length)..]);
            if ((Crc32(Crc32(0xFFFFFFFF, typeBytes), body) ^ 0xFFFFFFFF) != crc)
                throw Damaged(source, $"is damaged: chunk '{type}' at byte {pos} fails its CRC check.");
            if ((pos == 8) != (type == "IHDR"))
                throw Damaged(source, $"is damaged: the first chunk must be IHDR (and only the first), found " +
                    $"'{type}' at byte {pos}.");
            if (type == "IHDR" && length != 13)
                throw Damaged(source, $"is damaged: IHDR holds {length} bytes; a PNG header has 13.");
            // ImageSharp 2.1.13 never returns from an Adam7 PNG 1–4 pixels wide (its own encoder writes them; measured
            // over 1…40 × 1…40: every hang had width ≤ 4), so those are refused rather than decoded
            if (type == "IHDR" && body[12] != 0 && BinaryPrimitives.ReadUInt32BigEndian(body) <= 4)
                throw Damaged(source, $"is an interlaced PNG {BinaryPrimitives.ReadUInt32BigEndian(body)} pixels " +
                    "wide, which the decoder cannot read; save it without interlacing.");
            pixels |= type == "IDAT";
            // a critical chunk (first letter upper case) that a decoder does not know must not be skipped
            if ((typeBytes[0] & 0x20) == 0 && type is not ("IHDR" or "PLTE" or "IDAT" or "IEND"))
                throw Damaged(source, $"is damaged: unknown critical chunk '{type}' at byte {pos}.");
            if (type == "IEND")
            {
                if (!pixels) throw Damaged(source, "is damaged: it has no image data (IDAT).");
                return;
            }
            pos += 12 + (int)length;
        }
    }

    private static void CheckJpeg(ReadOnlySpan<byte> data, string source)
    {
        // Entropy-coded data stuffs every 0xFF with a 0x00, so FF D9 after the first scan (FF DA) is the EOI marker.
        int scan = data.IndexOf([(byte)0xFF, (byte)0xDA]);
        if (scan < 0 || data[(scan + 2)..].IndexOf([(byte)0xFF, (byte)0xD9]) < 0)
            throw Damaged(source, "is truncated: the JPEG ends before its end-of-image marker.");
    }

    private static void CheckWebp(ReadOnlySpan<byte> data, string source)
    {
        long body = data.Length >= 12 ? BinaryPrimitives.ReadUInt32LittleEndian(data[4..]) : -1;
        if (body < 4 || 8 + body > data.Length)
            throw Damaged(source,
                $"is truncated: its RIFF header declares {8 + body} bytes, the file has {data.Length}.");
    }

    private static void CheckGif(ReadOnlySpan<byte> data, string source)
    {
        // the trailer 0x3B ends the stream (anything after it is ignored)
        if (data.LastIndexOf((byte)0x3B) < 13)
            throw Damaged(source, "is truncated: the GIF has no trailer.");
    }

    private static void CheckBmp(ReadOnlySpan<byte> data, string source)
    {
        if (data.Length < 34) throw Damaged(source, "is truncated in its BMP header.");
        uint offset = BinaryPrimitives.ReadUInt32LittleEndian(data[10..]);
        uint headerSize = BinaryPrimitives.ReadUInt32LittleEndian(data[14..]);
        if (headerSize < 40) return; // the old OS/2 header: 16-bit sizes, left to the decoder
        int width = BinaryPrimitives.ReadInt32LittleEndian(data[18..]);
        int height = BinaryPrimitives.ReadInt32LittleEndian(data[22..]);
        int planes = BinaryPrimitives.ReadUInt16LittleEndian(data[26..]);
        int bits = BinaryPrimitives.ReadUInt16LittleEndian(data[28..]);
        uint compression = BinaryPrimitives.ReadUInt32LittleEndian(data[30..]);
        if (width <= 0 || height == 0 || height == int.MinValue || planes != 1
            || bits is not (1 or 2 or 4 or 8 or 16 or 24 or 32))
            throw Damaged(source,
                $"is damaged: its BMP header declares {width}×{height} pixels, {planes} plane(s) of " +
                $"{bits} bits.");
        uint colors = data.Length >= 50 ? BinaryPrimitives.ReadUInt32LittleEndian(data[46..]) : 0;
        // ImageSharp 2.1.13 allocates what these fields claim (a 1 GiB offset: ≈ 1 GB on the heap) before failing
        if (offset > data.Length || headerSize > data.Length || (long)colors * 4 > data.Length)
            throw Damaged(source, $"is damaged: its BMP header puts the pixels at byte {offset:N0} with {colors:N0} " +
                $"palette colours; the file has {data.Length:N0} bytes.");
        if (compression != 0) return;
        long stride = ((long)width * bits + 31) / 32 * 4;
        long end = offset + stride * Math.Abs((long)height);
        if (end > data.Length)
            throw Damaged(source, $"is truncated: its rows end at byte {end:N0}, the file has {data.Length:N0}.");
    }

    /// <summary>
    /// For a PNG whose size passed the limits: its image data must inflate to all the rows its header declares (a
    /// short stream is decoded as black rows otherwise). Inflated in 64 KiB pieces and counted, never stored.
    /// </summary>
    public static void CheckPngData(ReadOnlySpan<byte> data, string source)
    {
        using var compressed = new MemoryStream();
        long expected = 0;
        for (int pos = 8; pos + 12 <= data.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            var type = data.Slice(pos + 4, 4);
            var body = data.Slice(pos + 8, length);
            if (type.SequenceEqual("IHDR"u8)) expected = RawBytes(body);
            else if (type.SequenceEqual("IDAT"u8)) compressed.Write(body);
            pos += 12 + length;
        }
        compressed.Position = 0;
        long inflated = 0;
        try
        {
            using var z = new ZLibStream(compressed, CompressionMode.Decompress);
            var buffer = new byte[1 << 16];
            for (int n; inflated < expected && (n = z.Read(buffer)) > 0;) inflated += n;
        }
        // InvalidDataException, and zlib's own errors (ZLibException is an IOException)
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw Damaged(source, $"is damaged: its image data is corrupt ({e.Message.TrimEnd('.')}).");
        }
        if (inflated < expected)
            throw Damaged(source, $"is truncated: its image data holds {inflated:N0} of the {expected:N0} bytes " +
                "its header declares.");
    }

    /// <summary>
    /// The filtered bytes an IHDR declares: every row of every pass (7 for Adam7) with its filter byte.
    /// </summary>
    private static long RawBytes(ReadOnlySpan<byte> ihdr)
    {
        long width = BinaryPrimitives.ReadUInt32BigEndian(ihdr),
            height = BinaryPrimitives.ReadUInt32BigEndian(ihdr[4..]);
        int samples = ihdr[9] switch { 2 => 3, 4 => 2, 6 => 4, _ => 1 };
        long bits = (long)samples * ihdr[8];
        long Pass(long w, long h) => w == 0 || h == 0 ? 0 : h * ((w * bits + 7) / 8 + 1);
        if (ihdr[12] == 0) return Pass(width, height);
        (int X, int Y, int DX, int DY)[] passes =
            [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
        return passes.Sum(p => Pass((width - p.X + p.DX - 1) / p.DX, (height - p.Y + p.DY - 1) / p.DY));
    }

    private static void CheckTga(ReadOnlySpan<byte> data, string source)
    {
        if (data.Length < 18) throw Damaged(source, "is truncated in its TGA header.");
        int idLength = data[0], colorMapType = data[1], imageType = data[2];
        int mapLength = BinaryPrimitives.ReadUInt16LittleEndian(data[5..]), mapBits = data[7];
        int width = BinaryPrimitives.ReadUInt16LittleEndian(data[12..]);
        int height = BinaryPrimitives.ReadUInt16LittleEndian(data[14..]), bits = data[16];
        if (width == 0 || height == 0 || bits is not (8 or 15 or 16 or 24 or 32) || colorMapType > 1
            || imageType is not (1 or 2 or 3 or 9 or 10 or 11))
            throw Damaged(source, $"is damaged: its TGA header declares type {imageType}, {width}×{height} pixels of " +
                $"{bits} bits.");
        long start = 18L + idLength + (colorMapType == 1 ? (long)mapLength * ((mapBits + 7) / 8) : 0);
        long pixels = (long)width * height, bytes = (bits + 7) / 8;
        if (imageType < 9)
        {
            if (start + pixels * bytes > data.Length)
                throw Damaged(source, $"is truncated: its pixels end at byte {start + pixels * bytes:N0}, the file has " +
                    $"{data.Length:N0}.");
            return;
        }
        // run-length packets: a header byte (count − 1, and the top bit for a run of one value) and its pixels; they
        // must cover the image exactly (ImageSharp 2.1.13 writes past its buffer's end otherwise, and stops)
        long at = start, covered = 0;
        while (covered < pixels)
        {
            if (at >= data.Length)
                throw Damaged(source, $"is truncated: its run-length data ends after {covered:N0} of {pixels:N0} pixels.");
            int header = data[(int)at];
            long count = (header & 0x7F) + 1;
            at += 1 + (header >= 0x80 ? bytes : count * bytes);
            covered += count;
        }
        if (covered > pixels || at > data.Length)
            throw Damaged(source, covered > pixels
                ? $"is damaged: its run-length data covers {covered:N0} pixels, the image {pixels:N0}."
                : "is truncated in its last run-length packet.");
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
}
