namespace Diffusion.Runtime.Schedules;

/// <summary>Which noise levels a sampler visits: timesteps chosen by a spacing rule, or Karras' σ grid.</summary>
public sealed record GridOptions
{
    /// <summary>Spacing of timesteps (ignored with <see cref="Karras"/>).</summary>
    public TimestepSpacing Spacing { get; init; } = TimestepSpacing.Trailing;
    /// <summary>Use Karras et al.'s σ grid (ρ = <see cref="Rho"/>) between the schedule's σ_min and σ_max.</summary>
    public bool Karras { get; init; }
    /// <summary>ρ of the Karras grid.</summary>
    public double Rho { get; init; } = 7;
    /// <summary>diffusers' steps_offset, added to leading timesteps.</summary>
    public int StepsOffset { get; init; }
    /// <summary>
    /// Timesteps by the multistep solvers' rule (<see cref="TimestepSpacings.MultistepTimesteps"/>), for samplers that
    /// declare <see cref="Samplers.SamplerInfo.IsMultistep"/>.
    /// </summary>
    public bool Multistep { get; init; }
}

/// <summary>Builds the sequence of noise levels a sampler walks: n levels, then the clean level.</summary>
public static class SamplingGrid
{
    /// <summary>n + 1 levels in order of decreasing noise; the last is <see cref="NoiseLevel.Clean"/>.</summary>
    public static NoiseLevel[] Create(NoiseSchedule schedule, int steps, GridOptions options)
    {
        var levels = new NoiseLevel[steps + 1];
        if (options.Karras)
        {
            var sigmas = KarrasSigmas.Create(steps, schedule.SigmaMin, schedule.SigmaMax, options.Rho);
            for (int i = 0; i < steps; i++) levels[i] = NoiseLevel.OfSigma(schedule, sigmas[i]);
        }
        else
        {
            var t = options.Multistep
                ? TimestepSpacings.MultistepTimesteps(options.Spacing, schedule.TrainTimesteps, steps,
                    options.StepsOffset)
                : TimestepSpacings.Timesteps(options.Spacing, schedule.TrainTimesteps, steps, options.StepsOffset);
            for (int i = 0; i < steps; i++) levels[i] = NoiseLevel.At(schedule, t[i]);
        }
        levels[steps] = NoiseLevel.Clean;
        return levels;
    }
}
