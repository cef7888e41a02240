namespace Diffusion.Trainer.Export;

/// <summary>
/// The values one activation takes over a calibration set, binned over a fixed interval (values outside it count in
/// its end bins), and the uint8 quantization range that loses least on them: the [a, b] ∋ 0 that minimises the
/// expected squared error, clipping (values beyond a or b, each off by its distance to the end) plus rounding (each
/// value inside off by Δ²/12 on average, Δ = (b − a)/255). Min/max ranges spend the grid on a long tail's rare far
/// values (as after SiLU); this choice trades their clipping error against the rounding error of all the others.
/// </summary>
public sealed class ActivationHistogram
{
    /// <summary>The uint8 grid's steps.</summary>
    public const int Levels = 255;

    private readonly long[] _counts;
    private readonly float _min, _width;

    /// <summary>An empty histogram of <paramref name="bins"/> equal bins over [min, max] (widened to hold 0).</summary>
    public ActivationHistogram(float min, float max, int bins = 2048)
    {
        if (!float.IsFinite(min) || !float.IsFinite(max) || min > max)
            throw new ArgumentException($"[{min}, {max}] is not an interval.");
        if (bins < 2) throw new ArgumentOutOfRangeException(nameof(bins), bins, "needs at least 2 bins.");
        _min = Math.Min(min, 0);
        float top = Math.Max(max, 0);
        _width = top > _min ? (top - _min) / bins : 1f / bins;
        _counts = new long[bins];
    }

    /// <summary>Counts <paramref name="values"/>.</summary>
    public void Add(ReadOnlySpan<float> values)
    {
        float inverse = 1 / _width, origin = _min;
        int last = _counts.Length - 1;
        foreach (var v in values)
        {
            float position = (v - origin) * inverse;
            int bin = position <= 0 ? 0 : position >= last ? last : (int)position;
            _counts[bin]++;
        }
    }

    /// <summary>The values counted.</summary>
    public long Count => _counts.Sum();

    /// <summary>
    /// The range [a, b] (bin edges, a ≤ 0 ≤ b) of least expected squared error on the values counted, and that error
    /// per value; bins stand for their centres.
    /// </summary>
    public (float Min, float Max, double MeanSquaredError) BestRange()
    {
        int n = _counts.Length;
        // prefix sums of count, count·c and count·c² (c = bin centre), so a range's clipping error is O(1)
        var p0 = new double[n + 1];
        var p1 = new double[n + 1];
        var p2 = new double[n + 1];
        for (int k = 0; k < n; k++)
        {
            double c = Centre(k);
            p0[k + 1] = p0[k] + _counts[k];
            p1[k + 1] = p1[k] + _counts[k] * c;
            p2[k + 1] = p2[k] + _counts[k] * c * c;
        }
        double total = p0[n];
        if (total == 0) return (_min, _min + n * _width, 0);
        // Σ_{k in [from, to)} count·(c − e)²
        double Clipped(int from, int to, double e) =>
            p2[to] - p2[from] - 2 * e * (p1[to] - p1[from]) + e * e * (p0[to] - p0[from]);
        // 0 must be a grid point: the range starts at or below the edge under 0, ends at or above the one over it
        int zero = Math.Clamp((int)Math.Floor(-_min / _width), 0, n - 1);
        double best = double.PositiveInfinity;
        (int Low, int High) choice = (0, n);
        for (int low = 0; low <= zero; low++)
        {
            double a = Edge(low), below = Clipped(0, low, a);
            for (int high = Math.Max(zero + 1, low + 1); high <= n; high++)
            {
                double b = Edge(high), step = (b - a) / Levels;
                double error = below + Clipped(high, n, b) + (p0[high] - p0[low]) * step * step / 12;
                if (error < best) (best, choice) = (error, (low, high));
            }
        }
        return ((float)Edge(choice.Low), (float)Edge(choice.High), best / total);
    }

    private double Edge(int k) => _min + (double)k * _width;
    private double Centre(int k) => _min + (k + 0.5) * _width;
}
