using System.Numerics.Tensors;

namespace Diffusion.Runtime.Noise;

/// <summary>
/// Standard normal noise keyed by (seed, image index, draw index): value j of draw d for image i is a pure function
/// of those four numbers, so image i of a seed is identical whatever the batch size, batch composition or thread
/// count. Draw 0 is the initial x_T; samplers number their later draws 1, 2, …
/// Philox4x32-10 (counter = (j/4, d, i)) gives uniform words; Box–Muller turns each pair into two normals.
/// </summary>
public readonly struct NoiseGenerator(ulong seed)
{
    private const int Chunk = 512; // values generated per pass, on the stack

    /// <summary>The seed.</summary>
    public ulong Seed { get; } = seed;

    /// <summary>
    /// Fills <paramref name="destination"/> (one image's values) with draw <paramref name="draw"/> of image
    /// <paramref name="image"/>.
    /// </summary>
    [System.Runtime.CompilerServices.SkipLocalsInit]
    public void Fill(Span<float> destination, long image, uint draw)
    {
        uint k0 = (uint)Seed, k1 = (uint)(Seed >> 32);
        uint i0 = (uint)image, i1 = (uint)((ulong)image >> 32);
        Span<uint> words = stackalloc uint[Chunk];
        Span<float> radius = stackalloc float[Chunk / 2], angle = stackalloc float[Chunk / 2],
            sin = stackalloc float[Chunk / 2], cos = stackalloc float[Chunk / 2];
        for (int start = 0; start < destination.Length; start += Chunk)
        {
            int count = Math.Min(Chunk, destination.Length - start), blocks = (count + 3) / 4, pairs = 2 * blocks;
            Philox4x32.Blocks(words[..(4 * blocks)], (uint)(start / 4), draw, i0, i1, k0, k1);
            // Box–Muller on pair p = (words[2p], words[2p+1]): radius √(−2 ln u₁), u₁ ∈ (0, 1) from 24 bits; angle
            // 2π·u₂ − π. Each step runs over the whole chunk (vectorised); the values are those of the scalar formula.
            Span<float> r = radius[..pairs], a = angle[..pairs], s = sin[..pairs], c = cos[..pairs];
            for (int p = 0; p < pairs; p++)
            {
                r[p] = ((words[2 * p] >> 8) + 0.5f) * (1f / (1 << 24));
                a[p] = ((words[2 * p + 1] >> 8) * (1f / (1 << 23)) - 1f) * MathF.PI;
            }
            TensorPrimitives.Log(r, r);
            TensorPrimitives.Multiply(r, -2f, r);
            TensorPrimitives.Sqrt(r, r);
            TensorPrimitives.SinCos(a, s, c);
            TensorPrimitives.Multiply(r, c, c);
            TensorPrimitives.Multiply(r, s, s);
            var d = destination.Slice(start, count);
            for (int p = 0; p < count / 2; p++)
            {
                d[2 * p] = c[p];
                d[2 * p + 1] = s[p];
            }
            if (count % 2 != 0) d[count - 1] = c[count / 2];
        }
    }

    /// <summary>
    /// Fills a batch: image k of <paramref name="destination"/> gets draw <paramref name="draw"/> of image
    /// <paramref name="firstImage"/> + k. (On the calling thread: a parallel loop would allocate at every step, and
    /// the sampling loop allocates nothing after its warm-up.)
    /// </summary>
    public void Fill(Span<float> destination, long firstImage, int imageSize, uint draw)
    {
        int count = destination.Length / imageSize;
        for (int k = 0; k < count; k++) Fill(destination.Slice(k * imageSize, imageSize), firstImage + k, draw);
    }
}
