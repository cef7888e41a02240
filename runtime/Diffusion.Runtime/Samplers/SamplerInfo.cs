namespace Diffusion.Runtime.Samplers;

/// <summary>
/// What a sampler is, declared once beside it: its name, the paper it implements, its other names, the
/// <see cref="SamplerOptions"/> knobs it reads with their defaults, its grid rule, and how to make it from options.
/// </summary>
public sealed record SamplerInfo(string Name, string Description)
{
    /// <summary>
    /// Other names users know it by (k-diffusion's functions, the A1111 web UI's labels, diffusers' classes).
    /// </summary>
    public IReadOnlyList<string> Aliases { get; init; } = [];

    /// <summary>The <see cref="SamplerOptions"/> knobs it reads; the others do not apply to it.</summary>
    public SamplerKnobs Knobs { get; init; }

    /// <summary>
    /// The values of its knobs when a request leaves them unset: the one place its defaults are written.
    /// </summary>
    public SamplerOptions Defaults { get; init; } = new();

    /// <summary>
    /// Whether each step reuses earlier steps' predictions (DPM-Solver++(2M/3M), UniPC): such a sampler walks the
    /// multistep grid rule on leading and linspace spacings
    /// (<see cref="Schedules.TimestepSpacings.MultistepTimesteps"/>).
    /// </summary>
    public bool IsMultistep { get; init; }

    /// <summary>
    /// Whether it chooses its own steps (and ignores the grid's step count), like an adaptive ODE solver.
    /// </summary>
    public bool IsAdaptive { get; init; }

    /// <summary>Makes the sampler with the knobs the options set and <see cref="Defaults"/> for the rest.</summary>
    public Func<SamplerOptions, ISampler> Create { get; init; } = _ => throw new NotSupportedException();
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
    /// <summary>
    /// <see cref="SamplerOptions.RelativeTolerance"/>, <see cref="SamplerOptions.AbsoluteTolerance"/>,
    /// <see cref="SamplerOptions.MaxEvaluations"/>.
    /// </summary>
    Tolerances = 4,
    /// <summary><see cref="SamplerOptions.Resampling"/> (RePaint).</summary>
    Resampling = 8,
}
