using MathNet.Numerics;

namespace Diffusion.Evaluation.Likelihood;

/// <summary>
/// The Gaussian quantities a likelihood is summed from, per value and in nats: the KL divergence of two normals, a
/// normal's log-density, and the log-probability of an 8-bit bin under a normal (the discretized decoder of Ho et al.
/// 2020, §3.3: bins of width 2/255 around the 256 levels of [−1, 1], the outermost two reaching to ±∞).
/// </summary>
public static class GaussianTerms
{
    /// <summary>The width of an 8-bit bin in the data range [−1, 1]: 2/255.</summary>
    public const double BinWidth = 2.0 / 255;

    private static readonly double HalfLog2Pi = 0.5 * Math.Log(2 * Math.PI);

    /// <summary>KL(N(m₁, e^{v₁}) ‖ N(m₂, e^{v₂})) for log-variances v₁, v₂.</summary>
    public static double NormalKl(double mean1, double logVariance1, double mean2, double logVariance2)
    {
        double d = mean1 - mean2;
        return 0.5 * (-1 + logVariance2 - logVariance1 + Math.Exp(logVariance1 - logVariance2)
            + d * d * Math.Exp(-logVariance2));
    }

    /// <summary>log N(x; m, e^{v}).</summary>
    public static double LogDensity(double x, double mean, double logVariance)
    {
        double d = x - mean;
        return -HalfLog2Pi - 0.5 * logVariance - 0.5 * d * d * Math.Exp(-logVariance);
    }

    /// <summary>
    /// log P(bin of <paramref name="x"/>) under N(m, e^{v}): the normal's mass on [x − 1/255, x + 1/255], with the
    /// lowest level's bin reaching to −∞ and the highest's to +∞. Computed from whichever tail keeps the difference
    /// of two CDFs exact; a mass below 1e-300 (some 37 σ from the mean) counts as 1e-300.
    /// </summary>
    public static double DiscretizedLogLikelihood(double x, double mean, double logVariance)
    {
        double scale = Math.Exp(0.5 * logVariance);
        double lower = x < -1 + BinWidth / 2 ? double.NegativeInfinity : (x - BinWidth / 2 - mean) / scale;
        double upper = x > 1 - BinWidth / 2 ? double.PositiveInfinity : (x + BinWidth / 2 - mean) / scale;
        // Φ(b) − Φ(a) = Q(a) − Q(b) with Q(z) = erfc(z/√2)/2; above the mean the upper tails are the small, exact ones
        double mass = lower > 0 ? Q(lower) - Q(upper) : Q(-upper) - Q(-lower);
        return Math.Log(Math.Max(mass, 1e-300));
    }

    /// <summary>The normal's upper tail Q(z) = P(Z &gt; z), exact in the far tail.</summary>
    public static double Q(double z) => double.IsPositiveInfinity(z) ? 0 : double.IsNegativeInfinity(z) ? 1
        : 0.5 * SpecialFunctions.Erfc(z / Math.Sqrt(2));

    /// <summary>The standard normal CDF Φ(z).</summary>
    public static double Cdf(double z) => Q(-z);
}
