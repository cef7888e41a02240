using MathNet.Numerics.LinearAlgebra;

namespace Diffusion.Evaluation;

/// <summary>
/// The Fréchet distance between two Gaussians fitted to feature sets (Heusel et al. 2017's FID, in any feature space):
/// FD = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}), with Tr((Σ₁Σ₂)^{1/2}) = Tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) taken
/// through symmetric eigendecompositions (negative round-off eigenvalues clipped to 0), which keeps it real and stable.
/// </summary>
public static class FrechetDistance
{
    /// <summary>
    /// Mean and covariance (n − 1 normalised) of <paramref name="count"/> feature vectors of width
    /// <paramref name="dim"/>.
    /// </summary>
    public static (Vector<double> Mean, Matrix<double> Covariance) Statistics(ReadOnlySpan<float> features, int count,
        int dim)
    {
        if (count < 2) throw new ArgumentException("The Fréchet distance needs at least 2 feature vectors per set.");
        var x = Matrix<double>.Build.Dense(count, dim);
        for (int i = 0; i < count; i++)
            for (int j = 0; j < dim; j++) x[i, j] = features[i * dim + j];
        var mean = x.ColumnSums() / count;
        for (int i = 0; i < count; i++) x.SetRow(i, x.Row(i) - mean);
        return (mean, x.TransposeThisAndMultiply(x) / (count - 1));
    }

    /// <summary>FD between two fitted Gaussians.</summary>
    public static double Compute(Vector<double> mean1, Matrix<double> cov1, Vector<double> mean2, Matrix<double> cov2)
    {
        var root1 = SymmetricSqrt(cov1);
        var middle = root1 * cov2 * root1;
        middle = (middle + middle.Transpose()) / 2;
        double traceSqrt = middle.Evd(Symmetricity.Symmetric).EigenValues.Sum(l => Math.Sqrt(Math.Max(l.Real, 0)));
        var diff = mean1 - mean2;
        return diff.DotProduct(diff) + cov1.Trace() + cov2.Trace() - 2 * traceSqrt;
    }

    /// <summary>FD between two feature sets.</summary>
    public static double Compute(ReadOnlySpan<float> a, int countA, ReadOnlySpan<float> b, int countB, int dim)
    {
        var (m1, c1) = Statistics(a, countA, dim);
        var (m2, c2) = Statistics(b, countB, dim);
        return Compute(m1, c1, m2, c2);
    }

    private static Matrix<double> SymmetricSqrt(Matrix<double> m)
    {
        var evd = ((m + m.Transpose()) / 2).Evd(Symmetricity.Symmetric);
        var roots = Vector<double>.Build.Dense(evd.EigenValues.Count, i =>
            Math.Sqrt(Math.Max(evd.EigenValues[i].Real, 0)));
        return evd.EigenVectors * Matrix<double>.Build.DenseOfDiagonalVector(roots) * evd.EigenVectors.Transpose();
    }
}
