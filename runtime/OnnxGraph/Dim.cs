namespace Diffusion.OnnxGraph;

/// <summary>One dimension of a declared shape: a fixed size or a named (dynamic) one such as "batch".</summary>
public readonly record struct Dim(long? Size, string? Symbol)
{
    /// <summary>A fixed dimension.</summary>
    public static implicit operator Dim(long size) => new(size, null);

    /// <summary>A fixed dimension.</summary>
    public static implicit operator Dim(int size) => new(size, null);

    /// <summary>A dynamic dimension named <paramref name="symbol"/>.</summary>
    public static implicit operator Dim(string symbol) => new(null, symbol);
}
