namespace Diffusion.Runtime.Schedules;

/// <summary>How β_t grows over the training timesteps (diffusers' <c>beta_schedule</c> names).</summary>
public enum BetaScheduleKind
{
    /// <summary>β linear from beta_start to beta_end (Ho et al. 2020).</summary>
    Linear,
    /// <summary>√β linear from √beta_start to √beta_end (Stable Diffusion's schedule).</summary>
    ScaledLinear,
    /// <summary>ᾱ(t) = cos²((t/T + 0.008)/1.008 · π/2), β capped at 0.999 (Nichol &amp; Dhariwal 2021).</summary>
    SquaredCosCapV2,
    /// <summary>
    /// Ho et al.'s "quad" schedule: β = (linspace(√beta_start, √beta_end))², the same curve as scaled_linear.
    /// </summary>
    Quadratic,
    /// <summary>β = beta_start + (beta_end − beta_start) · sigmoid(linspace(−6, 6)).</summary>
    Sigmoid,
}

/// <summary>The β_t sequences of the known schedules.</summary>
public static class BetaSchedule
{
    /// <summary>
    /// Parses a diffusers schedule name (linear, scaled_linear, squaredcos_cap_v2 or cosine, quadratic, sigmoid).
    /// </summary>
    public static BetaScheduleKind Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "linear" => BetaScheduleKind.Linear,
        "scaled_linear" => BetaScheduleKind.ScaledLinear,
        "squaredcos_cap_v2" or "cosine" => BetaScheduleKind.SquaredCosCapV2,
        "quadratic" or "quad" => BetaScheduleKind.Quadratic,
        "sigmoid" => BetaScheduleKind.Sigmoid,
        _ => throw new ArgumentException(
            $"beta_schedule '{Imaging.Printable.Of(name, 60)}' is not known; expected linear, scaled_linear, " +
                "squaredcos_cap_v2 (cosine), quadratic or sigmoid."),
    };

    /// <summary>The diffusers name of a schedule.</summary>
    public static string Name(BetaScheduleKind kind) => kind switch
    {
        BetaScheduleKind.Linear => "linear",
        BetaScheduleKind.ScaledLinear => "scaled_linear",
        BetaScheduleKind.SquaredCosCapV2 => "squaredcos_cap_v2",
        BetaScheduleKind.Quadratic => "quadratic",
        BetaScheduleKind.Sigmoid => "sigmoid",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>β_0 … β_{T−1} for <paramref name="kind"/>.</summary>
    public static double[] Betas(BetaScheduleKind kind, int timesteps, double betaStart, double betaEnd)
    {
        if (timesteps < 2)
            throw new ArgumentOutOfRangeException(nameof(timesteps), timesteps,
                "num_train_timesteps must be at least 2.");
        var betas = new double[timesteps];
        for (int i = 0; i < timesteps; i++)
        {
            double u = (double)i / (timesteps - 1); // position in linspace(·, ·, T)
            betas[i] = kind switch
            {
                BetaScheduleKind.Linear => betaStart + u * (betaEnd - betaStart),
                BetaScheduleKind.ScaledLinear or BetaScheduleKind.Quadratic =>
                    Square(Math.Sqrt(betaStart) + u * (Math.Sqrt(betaEnd) - Math.Sqrt(betaStart))),
                BetaScheduleKind.SquaredCosCapV2 =>
                    Math.Min(1 - CosineAlphaBar((i + 1.0) / timesteps) / CosineAlphaBar((double)i / timesteps), 0.999),
                BetaScheduleKind.Sigmoid => betaStart + (betaEnd - betaStart) / (1 + Math.Exp(-(-6 + 12 * u))),
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            };
        }
        return betas;
    }

    /// <summary>
    /// The cosine schedule's continuous ᾱ(u), u ∈ [0, 1] (Nichol &amp; Dhariwal 2021, Eq. 17, s = 0.008).
    /// </summary>
    public static double CosineAlphaBar(double u) => Square(Math.Cos((u + 0.008) / 1.008 * Math.PI / 2));

    private static double Square(double x) => x * x;
}
