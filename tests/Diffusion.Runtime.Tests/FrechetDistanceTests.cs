using Diffusion.Evaluation;
using MathNet.Numerics.LinearAlgebra;

namespace Diffusion.Runtime.Tests;

public class FrechetDistanceTests
{
    private static float[] Gaussian(int count, double[] mean, double[] std, int seed)
    {
        var noise = new float[count * mean.Length];
        new Noise.NoiseGenerator((ulong)seed).Fill(noise, 0, noise.Length, 0);
        for (int i = 0; i < noise.Length; i++)
            noise[i] = (float)(mean[i % mean.Length] + std[i % mean.Length] * noise[i]);
        return noise;
    }

    [Fact]
    public void Diagonal_covariances_give_the_closed_form()
    {
        // For diagonal Σ the matrix square root is elementwise: FD = ‖μ₁ − μ₂‖² + Σ (√a_i − √b_i)².
        var m1 = Vector<double>.Build.DenseOfArray([0.5, -1, 2]);
        var m2 = Vector<double>.Build.DenseOfArray([0, 1, 2]);
        var c1 = Matrix<double>.Build.DenseOfDiagonalArray([4, 1, 0.25]);
        var c2 = Matrix<double>.Build.DenseOfDiagonalArray([1, 9, 0.25]);
        double expected = 0.25 + 4 + 0 + 1 + 4 + 0;
        Assert.Equal(expected, FrechetDistance.Compute(m1, c1, m2, c2), 9);
    }

    [Fact]
    public void Full_covariances_match_the_formula_in_the_other_order_and_are_symmetric()
    {
        var a = Gaussian(4000, [0, 1, 2, 3], [1, 2, 0.5, 1], 1);
        var b = Gaussian(3000, [0.5, 1, 1, 3], [2, 1, 0.5, 0.3], 2);
        for (int i = 0; i + 1 < a.Length; i += 4) a[i + 1] += a[i]; // correlate two features so Σ is not diagonal
        double ab = FrechetDistance.Compute(a, 4000, b, 3000, 4), ba = FrechetDistance.Compute(b, 3000, a, 4000, 4);
        Assert.Equal(ab, ba, 1e-9 * ab);
        Assert.True(ab > 1, $"{ab}");
    }

    [Fact]
    public void Identical_sets_are_at_distance_zero_and_shifted_sets_at_the_squared_shift()
    {
        var a = Gaussian(2000, [1, 2, 3], [1, 1, 1], 3);
        Assert.Equal(0, FrechetDistance.Compute(a, 2000, a, 2000, 3), 9);
        // same covariance, mean moved by 2 along one axis
        var shifted = a.Select((v, i) => i % 3 == 0 ? v + 2f : v).ToArray();
        Assert.Equal(4, FrechetDistance.Compute(a, 2000, shifted, 2000, 3), 4);
    }

    [Fact]
    public void Too_few_vectors_are_refused() =>
        Assert.Throws<ArgumentException>(() => FrechetDistance.Compute(new float[3], 1, new float[3], 1, 3));
}
