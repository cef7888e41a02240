using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Runtime.Noise;

/// <summary>
/// The Philox4x32-10 counter-based generator (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"):
/// a keyed bijection of a 128-bit counter, so any draw can be computed directly from its coordinates.
/// </summary>
public static class Philox4x32
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>Encrypts counter (c0..c3) under key (k0, k1) with 10 rounds.</summary>
    public static (uint, uint, uint, uint) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        Span<uint> output = stackalloc uint[4];
        Blocks(output, c0, c1, c2, c3, k0, k1);
        return (output[0], output[1], output[2], output[3]);
    }

    /// <summary>
    /// Fills <paramref name="output"/> (a multiple of 4 words) with the blocks of counters (c0 + b, c1, c2, c3) for
    /// b = 0, 1, …: the stream of words a fixed (c1, c2, c3) and key give.
    /// </summary>
    [SkipLocalsInit]
    public static void Blocks(Span<uint> output, uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        // The key schedule is the same for every block: k_r = k + r·W.
        Span<uint> ka = stackalloc uint[10], kb = stackalloc uint[10];
        for (int r = 0; r < 10; r++) { ka[r] = k0 + (uint)r * W0; kb[r] = k1 + (uint)r * W1; }
        int b = 0;
        if (Avx2.IsSupported) b = BlocksAvx2(output, ref c0, c1, c2, c3, ka, kb);
        for (; b + 3 < output.Length; b += 4, c0++)
        {
            uint x0 = c0, x1 = c1, x2 = c2, x3 = c3;
            for (int r = 0; r < 10; r++)
            {
                ulong p0 = (ulong)M0 * x0, p1 = (ulong)M1 * x2;
                uint y0 = (uint)(p1 >> 32) ^ x1 ^ ka[r];
                uint y2 = (uint)(p0 >> 32) ^ x3 ^ kb[r];
                x1 = (uint)p1;
                x3 = (uint)p0;
                x0 = y0;
                x2 = y2;
            }
            output[b] = x0; output[b + 1] = x1; output[b + 2] = x2; output[b + 3] = x3;
        }
    }

    /// <summary>
    /// Four blocks at a time in the 64-bit lanes of AVX2 registers (vpmuludq is exactly the 32×32→64-bit product of
    /// the scalar rounds); returns the words written, a multiple of 16, and advances <paramref name="c0"/> past them.
    /// </summary>
    private static int BlocksAvx2(Span<uint> output, ref uint c0, uint c1, uint c2, uint c3, ReadOnlySpan<uint> ka,
        ReadOnlySpan<uint> kb)
    {
        var low = Vector256.Create(0xFFFF_FFFFUL);
        var m0 = Vector256.Create((ulong)M0).AsUInt32();
        var m1 = Vector256.Create((ulong)M1).AsUInt32();
        int b = 0;
        for (; b + 15 < output.Length; b += 16, c0 += 4)
        {
            var x0 = Vector256.Create(c0, c0 + 1UL, c0 + 2UL, c0 + 3UL) & low; // the counter wraps as a uint does
            var x1 = Vector256.Create((ulong)c1);
            var x2 = Vector256.Create((ulong)c2);
            var x3 = Vector256.Create((ulong)c3);
            for (int r = 0; r < 10; r++)
            {
                var p0 = Avx2.Multiply(x0.AsUInt32(), m0);
                var p1 = Avx2.Multiply(x2.AsUInt32(), m1);
                var y0 = (p1 >> 32) ^ x1 ^ Vector256.Create((ulong)ka[r]);
                var y2 = (p0 >> 32) ^ x3 ^ Vector256.Create((ulong)kb[r]);
                x1 = p1 & low;
                x3 = p0 & low;
                x0 = y0;
                x2 = y2;
            }
            for (int lane = 0; lane < 4; lane++)
            {
                int o = b + 4 * lane;
                output[o] = (uint)x0.GetElement(lane);
                output[o + 1] = (uint)x1.GetElement(lane);
                output[o + 2] = (uint)x2.GetElement(lane);
                output[o + 3] = (uint)x3.GetElement(lane);
            }
        }
        return b;
    }
}
