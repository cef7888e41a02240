using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Evaluation.Benchmark;

/// <summary>
/// The CPU's measured float32 fused multiply-add peak: every thread runs independent FMA chains on the widest vector
/// unit the process can use (AVX-512, else AVX2 + FMA, else 128-bit vectors), long enough to hide the FMA latency
/// behind the ports' throughput. A network's GFLOP/s over this figure is the share of the machine it uses.
/// </summary>
public static class FmaPeak
{
    // Independent accumulators per thread: latency (4–5 cycles) × FMA ports (2) rounded up.
    private const int Chains = 12;
    private const int InnerIterations = 4096;

    // The one choice of width: float32 lanes per vector (the unit's name follows from it).
    private static readonly int Lanes = Avx512F.IsSupported && Vector512.IsHardwareAccelerated ? 16
        : Fma.IsSupported ? 8 : 4;

    /// <summary>The widest vector unit used, as "AVX-512 (512-bit)".</summary>
    public static string Unit => Lanes switch
    {
        16 => "AVX-512 (512-bit)",
        8 => "AVX2 + FMA (256-bit)",
        _ => "128-bit vectors",
    };

    /// <summary>
    /// GFLOP/s (2 per FMA lane) of <paramref name="threads"/> threads running together, the best of
    /// <paramref name="repeats"/> runs of about <paramref name="seconds"/> each.
    /// </summary>
    public static double Measure(int threads, double seconds = 0.25, int repeats = 3)
    {
        if (threads <= 0) throw new ArgumentOutOfRangeException(nameof(threads), threads, "must be positive.");
        // calibrate: outer iterations one thread does in the time asked
        long outer = 1;
        var watch = Stopwatch.StartNew();
        while (true)
        {
            watch.Restart();
            Chain(outer);
            if (watch.Elapsed.TotalSeconds > seconds / 4) break;
            outer *= 2;
        }
        outer = Math.Max(1, (long)(outer * seconds / Math.Max(watch.Elapsed.TotalSeconds, 1e-6)));
        double flopsPerOuter = 2.0 * Chains * InnerIterations * Lanes;
        double best = 0;
        for (int r = 0; r < repeats; r++)
        {
            using var start = new Barrier(threads + 1);
            var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
            {
                start.SignalAndWait();
                Chain(outer);
            }) { IsBackground = true }).ToList();
            foreach (var w in workers) w.Start();
            start.SignalAndWait();
            watch.Restart();
            foreach (var w in workers) w.Join();
            best = Math.Max(best, threads * outer * flopsPerOuter / watch.Elapsed.TotalSeconds / 1e9);
        }
        return best;
    }

    /// <summary>
    /// How <paramref name="threads"/> threads' peak compares with one thread's, measured back to back (each the best of
    /// three runs of about <paramref name="seconds"/>), as a sentence. Near 1× the threads share one core's vector
    /// units (hyperthreads of one core, as on many 2-vCPU cloud machines): no thread count gets more arithmetic out of
    /// such a machine than one thread does.
    /// </summary>
    public static string Scaling(int threads, double seconds = 0.25)
    {
        double one = Measure(1, seconds), all = Measure(threads, seconds);
        double ratio = all / one;
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{threads} threads reach {all:0} GFLOP/s where one alone reaches {one:0}: {ratio:0.00}×") +
            (ratio < 1.25 ? " — they share one core's vector units (hyperthreads of one core)" : "");
    }

    // The result is returned (and summed) so that the JIT cannot drop the chains.
    private static float Chain(long outer) => Lanes switch
    {
        16 => Chain<Fma512, Vector512<float>>(outer),
        8 => Chain<Fma256, Vector256<float>>(outer),
        _ => Chain<Fma128, Vector128<float>>(outer),
    };

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Chain<TUnit, TVector>(long outer) where TUnit : struct, IVectorUnit<TVector>
    {
        var a = TUnit.Create(0.999999f);
        var b = TUnit.Create(1e-7f);
        TVector c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        for (long o = 0; o < outer; o++)
            for (int i = 0; i < InnerIterations; i++)
            {
                c0 = TUnit.Fma(c0, a, b); c1 = TUnit.Fma(c1, a, b); c2 = TUnit.Fma(c2, a, b);
                c3 = TUnit.Fma(c3, a, b); c4 = TUnit.Fma(c4, a, b); c5 = TUnit.Fma(c5, a, b);
                c6 = TUnit.Fma(c6, a, b); c7 = TUnit.Fma(c7, a, b); c8 = TUnit.Fma(c8, a, b);
                c9 = TUnit.Fma(c9, a, b); c10 = TUnit.Fma(c10, a, b); c11 = TUnit.Fma(c11, a, b);
            }
        return TUnit.Sum(c0) + TUnit.Sum(c1) + TUnit.Sum(c2) + TUnit.Sum(c3) + TUnit.Sum(c4) + TUnit.Sum(c5)
            + TUnit.Sum(c6) + TUnit.Sum(c7) + TUnit.Sum(c8) + TUnit.Sum(c9) + TUnit.Sum(c10) + TUnit.Sum(c11);
    }

    // One vector width's operations, as static members so that the JIT specialises Chain per width and inlines them.
    private interface IVectorUnit<TVector>
    {
        static abstract TVector Create(float value);
        static abstract TVector Fma(TVector c, TVector a, TVector b);
        static abstract float Sum(TVector v);
    }

    private struct Fma512 : IVectorUnit<Vector512<float>>
    {
        public static Vector512<float> Create(float value) => Vector512.Create(value);
        public static Vector512<float> Fma(Vector512<float> c, Vector512<float> a, Vector512<float> b) =>
            Avx512F.FusedMultiplyAdd(c, a, b);
        public static float Sum(Vector512<float> v) => Vector512.Sum(v);
    }

    private struct Fma256 : IVectorUnit<Vector256<float>>
    {
        public static Vector256<float> Create(float value) => Vector256.Create(value);
        public static Vector256<float> Fma(Vector256<float> c, Vector256<float> a, Vector256<float> b) =>
            System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(c, a, b);
        public static float Sum(Vector256<float> v) => Vector256.Sum(v);
    }

    private struct Fma128 : IVectorUnit<Vector128<float>>
    {
        public static Vector128<float> Create(float value) => Vector128.Create(value);
        public static Vector128<float> Fma(Vector128<float> c, Vector128<float> a, Vector128<float> b) =>
            Vector128.FusedMultiplyAdd(c, a, b);
        public static float Sum(Vector128<float> v) => Vector128.Sum(v);
    }
}
