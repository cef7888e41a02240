namespace Diffusion.Runtime.Schedules;

/// <summary>
/// How n sampling timesteps are picked from the T training timesteps (diffusers' <c>timestep_spacing</c>).
/// </summary>
public enum TimestepSpacing
{
    /// <summary>round(linspace(0, T−1, n)), descending: ends at 0 and starts at T−1.</summary>
    Linspace,
    /// <summary>k·⌊T/n⌋ + steps_offset for k = n−1 … 0 (DDIM's original choice; never reaches T−1).</summary>
    Leading,
    /// <summary>round(T − k·T/n) − 1 for k = 0 … n−1: starts at T−1 (Lin et al. 2023, Table 2).</summary>
    Trailing,
}

/// <summary>The spacing rules.</summary>
public static class TimestepSpacings
{
    /// <summary>Parses linspace, leading or trailing.</summary>
    public static TimestepSpacing Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "linspace" => TimestepSpacing.Linspace,
        "leading" => TimestepSpacing.Leading,
        "trailing" => TimestepSpacing.Trailing,
        _ => throw new ArgumentException($"timestep spacing '{Imaging.Printable.Of(name, 60)}' is not known; " +
            "expected linspace, leading or trailing."),
    };

    /// <summary>The n sampling timesteps in descending order.</summary>
    public static double[] Timesteps(TimestepSpacing spacing, int trainTimesteps, int steps, int stepsOffset = 0)
    {
        if (steps <= 0)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                "The number of sampling steps must be positive.");
        if (steps > trainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"{steps} sampling steps exceed the model's {trainTimesteps} training timesteps; use at " +
                    $"most {trainTimesteps}, or the Karras σ grid.");
        var t = new double[steps];
        for (int k = 0; k < steps; k++)
        {
            t[k] = spacing switch
            {
                TimestepSpacing.Linspace => steps == 1 ? trainTimesteps - 1
                    : Math.Round((trainTimesteps - 1) * (steps - 1 - k) / (double)(steps - 1), MidpointRounding.ToEven),
                TimestepSpacing.Leading => (steps - 1 - k) * (trainTimesteps / steps) + stepsOffset,
                TimestepSpacing.Trailing =>
                    Math.Round(trainTimesteps - k * (trainTimesteps / (double)steps), MidpointRounding.ToEven) - 1,
                _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
            };
            t[k] = Math.Clamp(t[k], 0, trainTimesteps - 1);
        }
        return t;
    }

    /// <summary>
    /// The n timesteps of a multistep solver's grid by DPM-Solver's and UniPC's own rule (diffusers'
    /// DPMSolverMultistepScheduler / UniPCMultistepScheduler): "leading" and "linspace" divide [0,
    /// <paramref name="end"/>) into n + 1 and leave out the point at t ≈ 0, so the last step goes from t ≈ T/(n + 1)
    /// straight to σ = 0 instead of extrapolating the solver's history across the jump to σ(0); "trailing" is the
    /// ordinary rule. <paramref name="end"/> (default T) is lower where DPM-Solver's lambda_min_clipped leaves out the
    /// noisiest timesteps.
    /// </summary>
    public static double[] MultistepTimesteps(TimestepSpacing spacing, int trainTimesteps, int steps,
        int stepsOffset = 0, int? end = null)
    {
        if (steps <= 0 || steps > trainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"The number of sampling steps must lie in 1…{trainTimesteps} (the model's training timesteps).");
        int last = end ?? trainTimesteps;
        var t = new double[steps];
        for (int k = 0; k < steps; k++)
            t[k] = Math.Clamp(spacing switch
            {
                TimestepSpacing.Linspace =>
                    Math.Round((last - 1) * (steps - k) / (double)steps, MidpointRounding.ToEven),
                TimestepSpacing.Leading => (steps - k) * (last / (steps + 1)) + stepsOffset,
                TimestepSpacing.Trailing =>
                    Math.Round(last - k * (trainTimesteps / (double)steps), MidpointRounding.ToEven) - 1,
                _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
            }, 0, trainTimesteps - 1);
        return t;
    }
}
