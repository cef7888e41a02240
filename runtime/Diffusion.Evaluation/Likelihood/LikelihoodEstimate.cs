namespace Diffusion.Evaluation.Likelihood;

/// <summary>
/// Negative log-likelihood in bits per dimension: the mean over images of each image's estimate, and the standard
/// error of that mean (the sample standard deviation over images / √n, which holds the estimator's own noise — sampled
/// timesteps, forward-process noise, probes, dequantization — as well as the data's spread).
/// </summary>
public sealed record LikelihoodEstimate(double BitsPerDim, double StandardError, double[] PerImage)
{
    /// <summary>The estimate from each image's bits/dim.</summary>
    public static LikelihoodEstimate Of(double[] perImage)
    {
        ArgumentNullException.ThrowIfNull(perImage);
        int n = perImage.Length;
        if (n == 0) throw new ArgumentException("No images.", nameof(perImage));
        double mean = perImage.Average();
        double se = n < 2 ? double.NaN : Math.Sqrt(perImage.Sum(v => (v - mean) * (v - mean)) / (n - 1) / n);
        return new LikelihoodEstimate(mean, se, perImage);
    }

    /// <summary>Images measured.</summary>
    public int Count => PerImage.Length;

    /// <inheritdoc />
    public override string ToString() =>
        FormattableString.Invariant($"{BitsPerDim:0.0000} ± {StandardError:0.0000}");
}
