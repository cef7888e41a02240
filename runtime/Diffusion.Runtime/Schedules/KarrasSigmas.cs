namespace Diffusion.Runtime.Schedules;

/// <summary>Karras et al. 2022, Eq. 5: σ_i = (σ_max^{1/ρ} + i/(n−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ.</summary>
public static class KarrasSigmas
{
    /// <summary>The n descending σ values from σ_max to σ_min (no trailing zero).</summary>
    public static double[] Create(int steps, double sigmaMin, double sigmaMax, double rho = 7)
    {
        if (steps <= 0)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                "The number of sampling steps must be positive.");
        if (!(sigmaMin > 0 && sigmaMax > sigmaMin))
            throw new ArgumentException($"Karras grid needs 0 < σ_min < σ_max; got {sigmaMin}, {sigmaMax}.");
        var sigmas = new double[steps];
        double a = Math.Pow(sigmaMax, 1 / rho), b = Math.Pow(sigmaMin, 1 / rho);
        for (int i = 0; i < steps; i++)
            sigmas[i] = Math.Pow(a + (steps == 1 ? 0 : i / (double)(steps - 1)) * (b - a), rho);
        return sigmas;
    }
}
