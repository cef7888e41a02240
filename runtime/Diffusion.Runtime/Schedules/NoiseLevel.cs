namespace Diffusion.Runtime.Schedules;

/// <summary>
/// One point of a sampling grid: the (continuous) timestep t and its ᾱ, with the quantities every sampler is
/// written in: α = √ᾱ, σ_vp = √(1 − ᾱ), Karras' σ = σ_vp/α and the half log-SNR λ = log(α/σ_vp).
/// The final point of every grid is the clean level (ᾱ = 1, σ = 0), where no network is evaluated.
/// </summary>
public readonly record struct NoiseLevel(double Timestep, double AlphaBar)
{
    /// <summary>
    /// Floor on ᾱ used in sampling, so that zero-terminal-SNR schedules keep a finite σ (2⁻²⁴, as diffusers).
    /// </summary>
    public const double MinAlphaBar = 1.0 / (1 << 24);

    /// <summary>The clean end of the trajectory: ᾱ = 1, σ = 0.</summary>
    public static NoiseLevel Clean => new(-1, 1);

    /// <summary>The level at continuous timestep t of <paramref name="schedule"/>.</summary>
    public static NoiseLevel At(NoiseSchedule schedule, double t) =>
        new(t, Math.Max(schedule.AlphaBar(t), MinAlphaBar));

    /// <summary>The level whose Karras σ is <paramref name="sigma"/>.</summary>
    public static NoiseLevel OfSigma(NoiseSchedule schedule, double sigma) =>
        sigma <= 0 ? Clean : new(schedule.TimestepOfSigma(sigma), 1 / (1 + sigma * sigma));

    /// <summary>True for the clean level (σ = 0).</summary>
    public bool IsClean => AlphaBar >= 1;

    /// <summary>α = √ᾱ, the signal scale of x_t.</summary>
    public double Alpha => Math.Sqrt(AlphaBar);

    /// <summary>σ_vp = √(1 − ᾱ), the noise scale of x_t.</summary>
    public double SigmaVp => Math.Sqrt(1 - AlphaBar);

    /// <summary>Karras' σ = √((1 − ᾱ)/ᾱ): the noise level of x_t/α.</summary>
    public double Sigma => SigmaOf(AlphaBar);

    /// <summary>λ = log(α/σ_vp) = −log σ, the half log-SNR (DPM-Solver's λ); +∞ at the clean level.</summary>
    public double Lambda => IsClean ? double.PositiveInfinity : -Math.Log(Sigma);

    /// <summary>σ = √((1 − ᾱ)/ᾱ).</summary>
    public static double SigmaOf(double alphaBar) => Math.Sqrt((1 - alphaBar) / alphaBar);
}
