namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Settings of samplers by name, as a command line or a config gives them: null leaves a knob to the sampler's own
/// default (<see cref="SamplerInfo.Defaults"/>); a knob the chosen sampler does not read
/// (<see cref="SamplerInfo.Knobs"/>) is refused, not ignored. To choose a sampler by type with its settings, give
/// <see cref="Generation.GenerationRequest.SamplerInstance"/> instead, e.g. <c>new Ddim { Eta = 0.5 }</c>.
/// </summary>
public sealed record SamplerOptions
{
    /// <summary>
    /// Stochasticity η (DDIM, Euler ancestral, the DPM-Solver++ SDE variants); null: the sampler's default.
    /// </summary>
    public double? Eta { get; init; }
    /// <summary>Langevin corrector signal-to-noise ratio r (predictor–corrector); null: its default.</summary>
    public double? Snr { get; init; }
    /// <summary>Langevin corrector steps per noise level; null: its default.</summary>
    public int? CorrectorSteps { get; init; }
    /// <summary>Relative tolerance of the adaptive ODE solver; null: its default.</summary>
    public double? RelativeTolerance { get; init; }
    /// <summary>Absolute tolerance of the adaptive ODE solver; null: its default.</summary>
    public double? AbsoluteTolerance { get; init; }
    /// <summary>Upper bound on network evaluations of the adaptive solver, per batch; null: its default.</summary>
    public int? MaxEvaluations { get; init; }
    /// <summary>
    /// RePaint resampling (Lugmayr et al. 2022, jump length 1): each DDPM/DDIM step is done this many times, re-noising
    /// back to its start in between; 1 is plain sampling.
    /// </summary>
    public int Resampling { get; init; } = 1;

    /// <summary>The knobs these options set, each with the parameter that sets it.</summary>
    public IEnumerable<(string Parameter, SamplerKnobs Knob)> Set()
    {
        if (Eta is not null) yield return (nameof(Eta), SamplerKnobs.Eta);
        if (Snr is not null) yield return (nameof(Snr), SamplerKnobs.Snr);
        if (CorrectorSteps is not null) yield return (nameof(CorrectorSteps), SamplerKnobs.Snr);
        if (RelativeTolerance is not null) yield return (nameof(RelativeTolerance), SamplerKnobs.Tolerances);
        if (AbsoluteTolerance is not null) yield return (nameof(AbsoluteTolerance), SamplerKnobs.Tolerances);
        if (MaxEvaluations is not null) yield return (nameof(MaxEvaluations), SamplerKnobs.Tolerances);
        if (Resampling != 1) yield return (nameof(Resampling), SamplerKnobs.Resampling);
    }
}

/// <summary>Checks of sampler settings, shared by the samplers that have them.</summary>
internal static class SamplerSettings
{
    public static void CheckEta(double eta)
    {
        if (!(eta >= 0 && eta <= 1))
            throw new DiffusionArgumentException(nameof(SamplerOptions.Eta), $"expected η in [0, 1], got {eta}.");
    }
}
