using System.Buffers.Binary;
using System.IO.Compression;

namespace Diffusion.Runtime.Imaging;

/// <summary>The IDX format of MNIST / Fashion-MNIST (optionally gzip-compressed): magic 0 0 8 n, n big-endian sizes, bytes.</summary>
public static class Idx
{
    /// <summary>Reads an IDX file of unsigned bytes; returns its dimensions and data. Errors name the file and byte offset.</summary>
    public static (int[] Dims, byte[] Data) Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file '{path}' does not exist.", path);
        byte[] bytes;
        try
        {
            using var file = File.OpenRead(path);
            using var stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            bytes = memory.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"IDX file '{path}': the gzip stream is corrupt or truncated ({e.Message}).", e);
        }
        if (bytes.Length < 4) throw new InvalidDataException($"IDX file '{path}' is truncated at offset {bytes.Length}: expected a 4-byte header.");
        if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08)
            throw new InvalidDataException($"IDX file '{path}': bad magic {bytes[0]:x2} {bytes[1]:x2} {bytes[2]:x2} at offset 0 (expected 00 00 08: unsigned bytes).");
        int n = bytes[3];
        if (n is < 1 or > 4) throw new InvalidDataException($"IDX file '{path}': {n} dimensions at offset 3 (expected 1 to 4).");
        if (bytes.Length < 4 + 4 * n) throw new InvalidDataException($"IDX file '{path}' is truncated at offset {bytes.Length}: expected {n} dimension sizes.");
        var dims = new int[n];
        long count = 1;
        for (int i = 0; i < n; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * i));
            if (dims[i] <= 0) throw new InvalidDataException($"IDX file '{path}': dimension {i} is {dims[i]} at offset {4 + 4 * i}.");
            count *= dims[i];
        }
        int offset = 4 + 4 * n;
        if (bytes.Length - offset != count)
            throw new InvalidDataException($"IDX file '{path}' is truncated or padded: {count} data bytes expected from offset {offset}, {bytes.Length - offset} found.");
        return (dims, bytes[offset..]);
    }

    /// <summary>An images file [N,H,W] and, if given, its labels file [N]: pixels (N·H·W bytes), labels, N, H, W.</summary>
    public static (byte[] Pixels, int[]? Labels, int Count, int Height, int Width) ReadImages(string imagesPath, string? labelsPath)
    {
        var (dims, pixels) = Read(imagesPath);
        if (dims.Length != 3) throw new InvalidDataException($"IDX file '{imagesPath}' has {dims.Length} dimensions; images need 3 (N, H, W).");
        int[]? labels = null;
        if (labelsPath is not null)
        {
            var (labelDims, raw) = Read(labelsPath);
            if (labelDims.Length != 1 || labelDims[0] != dims[0])
                throw new InvalidDataException($"IDX file '{labelsPath}' holds {string.Join("×", labelDims)} labels for {dims[0]} images in '{imagesPath}'.");
            labels = raw.Select(b => (int)b).ToArray();
        }
        return (pixels, labels, dims[0], dims[1], dims[2]);
    }
}
