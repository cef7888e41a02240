namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Overrides of samplers' settings by name, as a command line or a config gives them: each sampler takes the ones it
/// reads (<see cref="ISampler.Knobs"/>) and keeps its own defaults for the rest (see <see cref="ISampler.With"/>). To
/// choose a sampler by type with its settings, give <see cref="Generation.GenerationRequest.SamplerInstance"/> instead,
/// e.g. <c>new Ddim { Eta = 0.5 }</c>.
/// </summary>
public sealed record SamplerOptions
{
    /// <summary>Stochasticity η (DDIM, Euler ancestral, the DPM-Solver++ SDE variants); null: the sampler's default.</summary>
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
    /// <summary>RePaint resampling (Lugmayr et al. 2022, jump length 1): each DDPM/DDIM step is done this many times, re-noising back to its start in between.</summary>
    public int Resampling { get; init; } = 1;
}

/// <summary>Checks of sampler settings, shared by the samplers that have them.</summary>
internal static class SamplerSettings
{
    public static void CheckEta(string sampler, double eta)
    {
        if (!(eta >= 0 && eta <= 1)) throw new DiffusionArgumentException($"Eta must lie in [0, 1], got {eta} ({sampler}).");
    }
}
