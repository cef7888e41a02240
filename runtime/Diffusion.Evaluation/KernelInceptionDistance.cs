namespace Diffusion.Evaluation;

/// <summary>An unbiased KID estimate and its standard error.</summary>
public readonly record struct KidEstimate(double Value, double StandardError)
{
    /// <summary>
    /// "value ± standard error", three significant digits each (KID's scale follows the feature space's).
    /// </summary>
    public override string ToString() =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Value:G3} ± {StandardError:G3}");
}

/// <summary>
/// The kernel inception distance of Bińkowski et al. 2018 ("Demystifying MMD GANs"), in any feature space: the squared
/// maximum mean discrepancy with the polynomial kernel k(x, y) = (xᵀy/d + 1)³, estimated without bias,
/// MMD²ᵤ = Σ_{i≠j} k(xᵢ, xⱼ)/(m(m−1)) + Σ_{i≠j} k(yᵢ, yⱼ)/(n(n−1)) − 2 Σ k(xᵢ, yⱼ)/(mn).
/// Unlike the Fréchet distance its expectation does not depend on the sample sizes (it is 0 for two samples of the same
/// distribution at any count), so values at different counts can be compared; the estimate can be slightly negative.
/// The standard error is the delete-one jackknife over both sets (each deletion is O(1) from the kernel's row sums).
/// </summary>
public static class KernelInceptionDistance
{
    /// <summary>
    /// KID between <paramref name="countA"/> and <paramref name="countB"/> feature vectors of width
    /// <paramref name="dim"/>.
    /// </summary>
    public static KidEstimate Compute(ReadOnlySpan<float> a, int countA, ReadOnlySpan<float> b, int countB, int dim)
    {
        if (countA < 3 || countB < 3)
            throw new ArgumentException("The kernel inception distance needs at least 3 feature vectors per set.");
        if (a.Length < countA * dim || b.Length < countB * dim)
            throw new ArgumentException("The feature sets hold fewer values than their counts say.");
        // Row sums of the three kernel matrices (diagonals left out of the within-set ones).
        var aa = WithinRowSums(a, countA, dim);
        var bb = WithinRowSums(b, countB, dim);
        var ab = new double[countA];
        var ba = new double[countB];
        for (int i = 0; i < countA; i++)
        {
            var x = a.Slice(i * dim, dim);
            for (int j = 0; j < countB; j++)
            {
                double k = Kernel(x, b.Slice(j * dim, dim));
                ab[i] += k;
                ba[j] += k;
            }
        }
        double sumAA = aa.Sum(), sumBB = bb.Sum(), sumAB = ab.Sum();
        static double Mmd(double withinA, int m, double withinB, int n, double across) =>
            withinA / ((double)m * (m - 1)) + withinB / ((double)n * (n - 1)) - 2 * across / ((double)m * n);
        double value = Mmd(sumAA, countA, sumBB, countB, sumAB);
        // Jackknife: leaving xᵢ out removes 2·aa[i] from the within-A sum and ab[i] from the cross sum.
        double JackknifeVariance(int count, Func<int, double> leaveOut)
        {
            var values = new double[count];
            for (int i = 0; i < count; i++) values[i] = leaveOut(i);
            double mean = values.Average();
            return (count - 1.0) / count * values.Sum(v => (v - mean) * (v - mean));
        }
        double varianceA = JackknifeVariance(countA, i =>
            Mmd(sumAA - 2 * aa[i], countA - 1, sumBB, countB, sumAB - ab[i]));
        double varianceB = JackknifeVariance(countB, j =>
            Mmd(sumAA, countA, sumBB - 2 * bb[j], countB - 1, sumAB - ba[j]));
        return new KidEstimate(value, Math.Sqrt(varianceA + varianceB));
    }

    /// <summary>Σ_{j≠i} k(fᵢ, fⱼ) for every i, each pair computed once.</summary>
    private static double[] WithinRowSums(ReadOnlySpan<float> features, int count, int dim)
    {
        var sums = new double[count];
        for (int i = 0; i < count; i++)
        {
            var x = features.Slice(i * dim, dim);
            for (int j = i + 1; j < count; j++)
            {
                double k = Kernel(x, features.Slice(j * dim, dim));
                sums[i] += k;
                sums[j] += k;
            }
        }
        return sums;
    }

    private static double Kernel(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        double dot = System.Numerics.Tensors.TensorPrimitives.Dot(x, y);
        double k = dot / x.Length + 1;
        return k * k * k;
    }
}
