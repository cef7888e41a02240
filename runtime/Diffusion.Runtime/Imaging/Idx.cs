using System.Buffers.Binary;
using System.IO.Compression;

namespace Diffusion.Runtime.Imaging;

/// <summary>
/// The IDX format of MNIST / Fashion-MNIST (optionally gzip-compressed): magic 0 0 8 n, n big-endian sizes, bytes.
/// </summary>
public static class Idx
{
    /// <summary>
    /// Reads an IDX file of unsigned bytes; returns its dimensions and data. Errors name the file and byte offset. The
    /// header is read first and the data read to exactly its declared size, so a hostile header or a gzip bomb cannot
    /// make it read (or allocate) more than the header's size, which is capped at one array.
    /// </summary>
    public static (int[] Dims, byte[] Data) Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file '{path}' does not exist.", path);
        try
        {
            InputFile.CheckRegular(path, $"'{path}'");
            using var file = File.OpenRead(path);
            using var stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)
                ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
            var head = new byte[4];
            int got = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
            if (got < 4)
                throw new InvalidDataException($"IDX file '{path}' is truncated at offset {got}: " +
                    $"expected a 4-byte header.");
            if (head[0] != 0 || head[1] != 0 || head[2] != 0x08)
                throw new InvalidDataException($"IDX file '{path}': bad magic {head[0]:x2} {head[1]:x2} {head[2]:x2} " +
                    $"at offset 0 (expected 00 00 08: unsigned bytes).");
            int n = head[3];
            if (n is < 1 or > 4)
                throw new InvalidDataException($"IDX file '{path}': {n} dimensions at offset 3 (expected 1 to 4).");
            var sizes = new byte[4 * n];
            got = stream.ReadAtLeast(sizes, sizes.Length, throwOnEndOfStream: false);
            if (got < sizes.Length)
                throw new InvalidDataException($"IDX file '{path}' is truncated at offset {4 + got}: expected {n} " +
                    $"dimension sizes.");
            var dims = new int[n];
            long count = 1;
            for (int i = 0; i < n; i++)
            {
                dims[i] = BinaryPrimitives.ReadInt32BigEndian(sizes.AsSpan(4 * i));
                if (dims[i] <= 0)
                    throw new InvalidDataException($"IDX file '{path}': dimension {i} is {dims[i]} at " +
                        $"offset {4 + 4 * i}.");
                count = Math.Min(count * dims[i], (long)Array.MaxLength + 1); // saturates instead of overflowing
            }
            int offset = 4 + 4 * n;
            if (count > Array.MaxLength)
                throw new InvalidDataException($"IDX file '{path}': dimensions {string.Join("×", dims)} hold more " +
                    $"bytes than fit in memory at once (2³¹).");
            if (stream == file && file.Length - offset != count)
                throw new InvalidDataException($"IDX file '{path}' is truncated or padded: {count} data bytes " +
                    $"expected from offset {offset}, {file.Length - offset} found.");
            // Read in pieces, so that a header claiming more than the (compressed) file holds allocates only what is
            // there.
            using var collected = new MemoryStream((int)Math.Min(count, 1 << 24));
            var piece = new byte[1 << 20];
            while (collected.Length < count
                && (got = stream.Read(piece, 0, (int)Math.Min(piece.Length, count - collected.Length))) > 0)
                collected.Write(piece, 0, got);
            got = (int)collected.Length;
            var data = got == count ? collected.ToArray() : [];
            if (got < count || stream.ReadByte() >= 0)
                throw new InvalidDataException($"IDX file '{path}' is truncated or padded: {count} data bytes " +
                    $"expected from offset {offset}, {(got < count ? got.ToString() : "more")} found.");
            return (dims, data);
        }
        catch (Exception e) when (e is InvalidDataException or IOException
            && !e.Message.StartsWith("IDX file", StringComparison.Ordinal) && e is not FileNotFoundException)
        {
            throw new InvalidDataException($"IDX file '{path}': unreadable or corrupt ({e.Message}).", e);
        }
    }

    /// <summary>
    /// An images file [N,H,W] and, if given, its labels file [N]: pixels (N·H·W bytes), labels, N, H, W.
    /// </summary>
    public static (byte[] Pixels, int[]? Labels, int Count, int Height, int Width) ReadImages(string imagesPath,
        string? labelsPath)
    {
        var (dims, pixels) = Read(imagesPath);
        if (dims.Length != 3)
            throw new InvalidDataException($"IDX file '{imagesPath}' has {dims.Length} " +
                $"dimensions; images need 3 (N, H, W).");
        int[]? labels = null;
        if (labelsPath is not null)
        {
            var (labelDims, raw) = Read(labelsPath);
            if (labelDims.Length != 1 || labelDims[0] != dims[0])
                throw new InvalidDataException($"IDX file '{labelsPath}' holds {string.Join("×", labelDims)} labels " +
                    $"for {dims[0]} images in '{imagesPath}'.");
            labels = raw.Select(b => (int)b).ToArray();
        }
        return (pixels, labels, dims[0], dims[1], dims[2]);
    }
}
