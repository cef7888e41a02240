namespace Diffusion.Runtime.Noise;

/// <summary>
/// Standard normal noise keyed by (seed, image index, draw index): value j of draw d for image i is a pure function
/// of those four numbers, so image i of a seed is identical whatever the batch size, batch composition or thread
/// count. Draw 0 is the initial x_T; samplers number their later draws 1, 2, …
/// </summary>
public readonly struct NoiseGenerator(ulong seed)
{
    /// <summary>The seed.</summary>
    public ulong Seed { get; } = seed;

    /// <summary>Fills <paramref name="destination"/> (one image's values) with draw <paramref name="draw"/> of image <paramref name="image"/>.</summary>
    public void Fill(Span<float> destination, long image, uint draw)
    {
        uint k0 = (uint)Seed, k1 = (uint)(Seed >> 32);
        uint i0 = (uint)image, i1 = (uint)((ulong)image >> 32);
        int n = destination.Length;
        for (int j = 0, block = 0; j < n; j += 4, block++)
        {
            var (r0, r1, r2, r3) = Philox4x32.Block((uint)block, draw, i0, i1, k0, k1);
            BoxMuller(r0, r1, out float z0, out float z1);
            BoxMuller(r2, r3, out float z2, out float z3);
            destination[j] = z0;
            if (j + 1 < n) destination[j + 1] = z1;
            if (j + 2 < n) destination[j + 2] = z2;
            if (j + 3 < n) destination[j + 3] = z3;
        }
    }

    /// <summary>Fills a batch: image k of <paramref name="destination"/> gets draw <paramref name="draw"/> of image <paramref name="firstImage"/> + k.</summary>
    public void Fill(Span<float> destination, long firstImage, int imageSize, uint draw)
    {
        int count = destination.Length / imageSize;
        for (int k = 0; k < count; k++) Fill(destination.Slice(k * imageSize, imageSize), firstImage + k, draw);
    }

    /// <summary>Two independent N(0,1) values from two uniform 32-bit words (Box–Muller; u₁ ∈ (0, 1] so log never sees 0).</summary>
    private static void BoxMuller(uint a, uint b, out float z0, out float z1)
    {
        const double scale = 1.0 / 4294967296.0;
        double u1 = (a + 1.0) * scale, u2 = b * scale;
        double r = Math.Sqrt(-2 * Math.Log(u1));
        var (sin, cos) = Math.SinCos(2 * Math.PI * u2);
        z0 = (float)(r * cos);
        z1 = (float)(r * sin);
    }
}
