using System.Buffers.Binary;
using System.Text;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// The libraries a 64-bit little-endian ELF shared object names as its dependencies (its <c>DT_NEEDED</c> entries, as
/// <c>readelf -d</c> lists them), read from the dynamic segment through the program headers — a few kilobytes of the
/// file, however large it is.
/// </summary>
public static class ElfDependencies
{
    private const uint LoadSegment = 1, DynamicSegment = 2;
    private const long Needed = 1, StringTable = 5, StringTableSize = 10;
    private const int MaxName = 4096, MaxEntries = 1 << 16;

    /// <summary>The <c>DT_NEEDED</c> names of <paramref name="path"/>, in the file's order.</summary>
    /// <exception cref="DiffusionException">The file is missing, not a 64-bit little-endian ELF file, or damaged.
    /// </exception>
    public static IReadOnlyList<string> Read(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            return Read(file, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusionException($"'{path}' could not be read: {e.Message}", e);
        }
    }

    private static List<string> Read(FileStream file, string path)
    {
        DiffusionException Bad(string what) => new($"'{path}' is not a 64-bit little-endian ELF shared library " +
            $"({what}).");
        var header = ReadAt(file, 0, 64) ?? throw Bad("shorter than an ELF header");
        if (!header.AsSpan(0, 4).SequenceEqual("\u007fELF"u8)) throw Bad("no ELF signature");
        if (header[4] != 2 || header[5] != 1) throw Bad($"ELF class {header[4]}, data encoding {header[5]}");
        long phOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(32));
        int phSize = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(54));
        int phCount = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(56));
        if (phSize < 56 || phOffset < 0 || (long)phSize * phCount > 1 << 20) throw Bad("bad program header table");
        var table = ReadAt(file, phOffset, phSize * phCount) ?? throw Bad("program headers past the end of the file");

        var loads = new List<(ulong Address, ulong Size, ulong Offset)>();
        (long Offset, long Size)? dynamic = null;
        for (int i = 0; i < phCount; i++)
        {
            var h = table.AsSpan(i * phSize, phSize);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(h);
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(h[8..]);
            ulong address = BinaryPrimitives.ReadUInt64LittleEndian(h[16..]);
            ulong fileSize = BinaryPrimitives.ReadUInt64LittleEndian(h[32..]);
            if (type == LoadSegment) loads.Add((address, fileSize, offset));
            else if (type == DynamicSegment) dynamic = ((long)offset, (long)fileSize);
        }
        if (dynamic is not { } d) throw Bad("no dynamic segment: a static executable or an object file");
        if (d.Size < 0 || d.Size / 16 > MaxEntries) throw Bad("a dynamic segment of impossible size");
        var entries = ReadAt(file, d.Offset, (int)d.Size) ?? throw Bad("dynamic segment past the end of the file");

        var needed = new List<ulong>();
        ulong? strtab = null;
        ulong strsz = 0;
        for (int i = 0; i + 16 <= entries.Length; i += 16)
        {
            long tag = BinaryPrimitives.ReadInt64LittleEndian(entries.AsSpan(i));
            ulong value = BinaryPrimitives.ReadUInt64LittleEndian(entries.AsSpan(i + 8));
            if (tag == 0) break;
            if (tag == Needed) needed.Add(value);
            else if (tag == StringTable) strtab = value;
            else if (tag == StringTableSize) strsz = value;
        }
        if (needed.Count == 0) return [];
        if (strtab is not { } address0) throw Bad("dependencies without a string table");
        // The string table is named by its load address: find the segment that maps it into the file.
        var segment = loads.FirstOrDefault(l => address0 >= l.Address && address0 < l.Address + l.Size);
        if (segment.Size == 0) throw Bad("a string table outside every loaded segment");
        long tableOffset = (long)(address0 - segment.Address + segment.Offset);
        var names = new List<string>(needed.Count);
        foreach (var at in needed)
        {
            if (strsz > 0 && at >= strsz) throw Bad("a dependency name outside the string table");
            var bytes = ReadAt(file, tableOffset + (long)at, MaxName, allowShort: true) ?? throw Bad("truncated");
            int end = Array.IndexOf(bytes, (byte)0);
            if (end <= 0) throw Bad("an empty or unterminated dependency name");
            names.Add(Encoding.UTF8.GetString(bytes, 0, end));
        }
        return names;
    }

    /// <summary>
    /// <paramref name="count"/> bytes at <paramref name="offset"/>, or null where the file ends first (with
    /// <paramref name="allowShort"/>: as many as there are, null only for none).
    /// </summary>
    private static byte[]? ReadAt(FileStream file, long offset, int count, bool allowShort = false)
    {
        if (offset < 0 || count < 0 || offset >= file.Length) return null;
        long available = file.Length - offset;
        if (available < count && !allowShort) return null;
        var buffer = new byte[(int)Math.Min(count, available)];
        file.Position = offset;
        file.ReadExactly(buffer);
        return buffer;
    }
}
