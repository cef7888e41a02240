namespace Diffusion.Runtime.Conditioning;

/// <summary>
/// One conditioning input's values: <see cref="Entries"/> entries of <see cref="EntryShape"/> each — one shared by every
/// image, or one per image — as floats (embeddings) or integers (labels, token ids). The network's own element type
/// (float32, float16, int64, int32) is what the bound buffer holds; the values are converted once per batch.
/// </summary>
public sealed class ConditioningTensor
{
    private readonly float[]? _floats;
    private readonly long[]? _integers;

    private ConditioningTensor(float[]? floats, long[]? integers, int[] shape, string parameter)
    {
        if (shape.Length == 0 || shape.Any(d => d <= 0))
            throw new DiffusionArgumentException(parameter,
                $"expected a shape [entries, …] of positive sizes, got [{string.Join(",", shape)}].");
        long size = shape.Aggregate(1L, (a, d) => a * d);
        long length = floats?.LongLength ?? integers!.LongLength;
        if (size != length)
            throw new DiffusionArgumentException(parameter,
                $"the shape [{string.Join(",", shape)}] holds {size} values, but {length} were given.");
        _floats = floats;
        _integers = integers;
        Entries = shape[0];
        EntryShape = shape[1..];
        EntrySize = (int)(size / Entries);
    }

    /// <summary>
    /// Float values of shape [entries, …] (e.g. text embeddings [1, 77, 768]); the array is kept, not copied.
    /// </summary>
    public static ConditioningTensor FromFloats(float[] values, params int[] shape) =>
        new(values ?? throw new ArgumentNullException(nameof(values)), null, shape, nameof(values));

    /// <summary>Integer values of shape [entries, …] (e.g. class labels [N]); the array is kept, not copied.</summary>
    public static ConditioningTensor FromIntegers(long[] values, params int[] shape) =>
        new(null, values ?? throw new ArgumentNullException(nameof(values)), shape, nameof(values));

    /// <summary>Entries: 1 (shared by every image) or one per image.</summary>
    public int Entries { get; }

    /// <summary>The shape of one entry (the network input's shape after its batch dimension).</summary>
    public int[] EntryShape { get; }

    /// <summary>Values per entry.</summary>
    public int EntrySize { get; }

    /// <summary>Whether the values are integers (else floats).</summary>
    public bool IsInteger => _integers is not null;

    /// <summary>The entry that image <paramref name="image"/> of a generation reads.</summary>
    public int EntryOf(long image) => Entries == 1 ? 0 : checked((int)image);

    /// <summary>Entry <paramref name="entry"/>'s float values.</summary>
    public ReadOnlySpan<float> Floats(int entry) => _floats.AsSpan(entry * EntrySize, EntrySize);

    /// <summary>Entry <paramref name="entry"/>'s integer values.</summary>
    public ReadOnlySpan<long> Integers(int entry) => _integers.AsSpan(entry * EntrySize, EntrySize);

    /// <summary>"float [1,77,768]"-style description.</summary>
    public override string ToString() =>
        $"{(IsInteger ? "integer" : "float")} [{string.Join(",", new[] { Entries }.Concat(EntryShape))}]";
}
