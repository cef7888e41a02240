namespace Diffusion.Runtime.Samplers;

/// <summary>
/// A sampler: one readable unit that walks <see cref="SamplingContext.Grid"/> from x_T (in
/// <see cref="SamplingContext.X"/>, VP space) down to the clean level and leaves x₀ in the same buffer. Every sampler
/// has this one shape.
/// </summary>
public interface ISampler
{
    /// <summary>
    /// What this sampler is: name, knobs and their defaults, grid rule (its class's static <c>Info</c>).
    /// </summary>
    SamplerInfo Info { get; }

    /// <summary>The name used on the command line.</summary>
    string Name => Info.Name;

    /// <summary>
    /// Checks the sampler's settings; a bad one is a <see cref="DiffusionArgumentException"/> naming it.
    /// </summary>
    void Validate() { }

    /// <summary>
    /// Grid steps that spend at most <paramref name="evaluations"/> network evaluations per image (one per step unless
    /// the sampler says otherwise).
    /// </summary>
    int StepsForBudget(int evaluations) => evaluations;

    /// <summary>
    /// The grid this sampler walks for <paramref name="steps"/> steps when it builds its own (a diffusers scheduler
    /// reproduced with its own timestep rules); null, the usual answer, takes the request's grid. A request's explicit
    /// <paramref name="spacing"/> and <paramref name="karras"/> choices override the sampler's own.
    /// </summary>
    Schedules.NoiseLevel[]? OwnGrid(Schedules.NoiseSchedule schedule, int steps,
        Schedules.TimestepSpacing? spacing = null, bool? karras = null) => null;

    /// <summary>
    /// The factor on x_T ~ N(0, I) when sampling starts from pure noise at <paramref name="first"/> (not for img2img):
    /// 1 for a sampler true to the forward process; diffusers' Euler-family schedulers start from σ_max·z in σ space on
    /// linspace and trailing grids, i.e. σ_vp·z rather than z.
    /// </summary>
    double InitialNoiseScale(Schedules.NoiseLevel first) => 1;

    /// <summary>Runs the reverse process in place on <paramref name="c"/>.X.</summary>
    void Sample(SamplingContext c);
}
