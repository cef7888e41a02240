namespace Diffusion.Runtime.Samplers;

/// <summary>
/// A sampler: one readable unit that walks <see cref="SamplingContext.Grid"/> from x_T (in <see cref="SamplingContext.X"/>,
/// VP space) down to the clean level and leaves x₀ in the same buffer. Every sampler has this one shape.
/// </summary>
public interface ISampler
{
    /// <summary>The name used on the command line.</summary>
    string Name { get; }

    /// <summary>The <see cref="SamplerOptions"/> knobs this sampler reads; the others do not apply to it.</summary>
    SamplerKnobs Knobs => SamplerKnobs.None;

    /// <summary>This sampler with the overrides it reads applied (its own defaults for the rest); a new instance, this one is unchanged.</summary>
    ISampler With(SamplerOptions overrides) => this;

    /// <summary>Checks the sampler's settings; a bad one is a <see cref="DiffusionArgumentException"/> naming it.</summary>
    void Validate() { }

    /// <summary>Grid steps that spend at most <paramref name="evaluations"/> network evaluations per image (one per step unless the sampler says otherwise).</summary>
    int StepsForBudget(int evaluations) => evaluations;

    /// <summary>Whether it chooses its own steps (and ignores the grid's step count), like an adaptive ODE solver.</summary>
    bool IsAdaptive => false;

    /// <summary>Runs the reverse process in place on <paramref name="c"/>.X.</summary>
    void Sample(SamplingContext c);
}

/// <summary>The knobs of <see cref="SamplerOptions"/>, as flags: what a sampler declares it reads.</summary>
[Flags]
public enum SamplerKnobs
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary><see cref="SamplerOptions.Eta"/>.</summary>
    Eta = 1,
    /// <summary><see cref="SamplerOptions.Snr"/> and <see cref="SamplerOptions.CorrectorSteps"/>.</summary>
    Snr = 2,
    /// <summary><see cref="SamplerOptions.RelativeTolerance"/>, <see cref="SamplerOptions.AbsoluteTolerance"/>, <see cref="SamplerOptions.MaxEvaluations"/>.</summary>
    Tolerances = 4,
    /// <summary><see cref="SamplerOptions.Resampling"/> (RePaint).</summary>
    Resampling = 8,
}
