namespace Diffusion.Runtime.Samplers;

/// <summary>Knobs of individual samplers; each sampler reads only its own.</summary>
public sealed record SamplerOptions
{
    /// <summary>Stochasticity η: DDIM's (default 0, deterministic); Euler ancestral's and the DPM-Solver++ SDE variants' (default 1).</summary>
    public double? Eta { get; init; }
    /// <summary>Langevin corrector signal-to-noise ratio r (Song et al. 2021, Alg. 5).</summary>
    public double Snr { get; init; } = 0.16;
    /// <summary>Langevin corrector steps per noise level.</summary>
    public int CorrectorSteps { get; init; } = 1;
    /// <summary>Relative tolerance of the adaptive ODE solver.</summary>
    public double RelativeTolerance { get; init; } = 1e-3;
    /// <summary>Absolute tolerance of the adaptive ODE solver.</summary>
    public double AbsoluteTolerance { get; init; } = 1e-3;
    /// <summary>RePaint resampling (Lugmayr et al. 2022, jump length 1): each DDPM/DDIM step is done this many times, re-noising back to its start in between.</summary>
    public int Resampling { get; init; } = 1;
    /// <summary>Upper bound on network evaluations of the adaptive solver, per batch.</summary>
    public int MaxEvaluations { get; init; } = 20_000;
}
