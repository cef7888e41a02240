using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Diffusers;

/// <summary>
/// The noise levels a diffusers scheduler visits for n steps, built by its own rules (diffusers 0.31):
/// <list type="bullet">
/// <item>DDIM, DDPM and PNDM: integer timesteps by <see cref="TimestepSpacings"/> (the runtime's own rule is
/// theirs).</item>
/// <item>Euler, Euler ancestral, Heun, LMS: "linspace" keeps linspace(0, T−1, n) unrounded; σ is interpolated linearly
/// in σ
/// between integer timesteps; Karras σ's span the grid's own end points and map back to t by log-σ
/// interpolation.</item>
/// <item>DPMSolverMultistep, UniPCMultistep: "leading" and "linspace" divide [0, T) into n + 1 and drop the point at
/// t ≈ 0, so the last step goes from t ≈ T/(n+1) straight to σ = 0; Karras σ's span the whole schedule and their t
/// are rounded.</item>
/// </list>
/// The last level is the clean one (final_sigmas_type "zero") or σ_min = σ(t = 0) ("sigma_min"; with Karras σ's
/// that repeats the grid's own last σ, so the last step stays where it is, as in diffusers).
/// </summary>
public static class DiffusersGrid
{
    /// <summary>The n + 1 levels of <paramref name="scheduler"/> on <paramref name="schedule"/>.</summary>
    public static NoiseLevel[] Create(DiffusersScheduler scheduler, NoiseSchedule schedule, int steps)
    {
        int T = schedule.TrainTimesteps;
        if (steps <= 0 || steps > T)
            throw new DiffusionArgumentException("Steps",
                $"expected 1…{T} for {scheduler.ClassName} (the model's training timesteps), got {steps}.");
        var levels = new NoiseLevel[steps + 1];
        switch (scheduler.Family)
        {
            case DiffusersFamily.Ddim or DiffusersFamily.Ddpm or DiffusersFamily.Pndm:
                var t = TimestepSpacings.Timesteps(scheduler.Spacing, T, steps, scheduler.StepsOffset);
                for (int i = 0; i < steps; i++) levels[i] = NoiseLevel.At(schedule, t[i]);
                break;
            case DiffusersFamily.Euler or DiffusersFamily.EulerAncestral or DiffusersFamily.Heun or DiffusersFamily.Lms:
                SigmaGrid(scheduler, schedule, steps, levels);
                break;
            case DiffusersFamily.DpmSolverMultistep or DiffusersFamily.UniPCMultistep:
                MultistepGrid(scheduler, schedule, steps, levels);
                break;
            default:
                throw new DiffusionArgumentException("Sampler",
                    $"{scheduler.ClassName}: {scheduler.Unsupported ?? "no diffusers grid"}.");
        }
        levels[steps] = scheduler.EndsAtSigmaMin ? NoiseLevel.At(schedule, 0) : NoiseLevel.Clean;
        return levels;
    }

    private static void SigmaGrid(DiffusersScheduler s, NoiseSchedule schedule, int steps, NoiseLevel[] levels)
    {
        int T = schedule.TrainTimesteps;
        var t = new double[steps];
        for (int k = 0; k < steps; k++)
            t[k] = s.Spacing switch
            {
                TimestepSpacing.Linspace => (float)(steps == 1 ? 0 : (T - 1) * (steps - 1 - k) / (double)(steps - 1)),
                TimestepSpacing.Leading => (steps - 1 - k) * (T / steps) + s.StepsOffset,
                _ => Math.Round(T - k * (T / (double)steps), MidpointRounding.ToEven) - 1,
            };
        var sigma = t.Select(v => SigmaLinear(schedule, v)).ToArray();
        if (s.UseKarrasSigmas)
        {
            sigma = KarrasSigmas.Create(steps, sigma[^1], sigma[0]);
            t = sigma.Select(v => TimestepOfLogSigma(schedule, v)).ToArray();
        }
        for (int i = 0; i < steps; i++) levels[i] = new NoiseLevel(t[i], 1 / (1 + sigma[i] * sigma[i]));
    }

    private static void MultistepGrid(DiffusersScheduler s, NoiseSchedule schedule, int steps, NoiseLevel[] levels)
    {
        int T = schedule.TrainTimesteps;
        var t = TimestepSpacings.MultistepTimesteps(s.Spacing, T, steps, s.StepsOffset,
            T - ClippedTimesteps(schedule, s.LambdaMinClipped));
        if (s.UseKarrasSigmas)
        {
            var sigma = KarrasSigmas.Create(steps, schedule.Sigma(0), schedule.Sigma(T - 1));
            for (int i = 0; i < steps; i++)
                levels[i] = new NoiseLevel(Math.Round(TimestepOfLogSigma(schedule, sigma[i]), MidpointRounding.ToEven),
                    1 / (1 + sigma[i] * sigma[i]));
            return;
        }
        for (int i = 0; i < steps; i++) levels[i] = NoiseLevel.At(schedule, t[i]);
    }

    /// <summary>σ at continuous t, linear in σ between integer timesteps (numpy.interp on the σ table).</summary>
    private static double SigmaLinear(NoiseSchedule schedule, double t)
    {
        int last = schedule.TrainTimesteps - 1;
        t = Math.Clamp(t, 0, last);
        int i = Math.Min((int)Math.Floor(t), last - 1);
        double f = t - i;
        return (1 - f) * schedule.Sigma(i) + f * schedule.Sigma(i + 1);
    }

    /// <summary>The continuous t at σ, linear in log σ between integer timesteps (diffusers' _sigma_to_t).</summary>
    public static double TimestepOfLogSigma(NoiseSchedule schedule, double sigma)
    {
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        int last = schedule.TrainTimesteps - 1;
        int low = 0; // the last index whose log σ is ≤ log sigma, at most T − 2
        for (int i = 0; i <= last; i++)
            if (Math.Log(schedule.Sigma(i)) <= logSigma) low = i;
        low = Math.Min(low, last - 1);
        double lo = Math.Log(schedule.Sigma(low)), hi = Math.Log(schedule.Sigma(low + 1));
        double w = Math.Clamp((lo - logSigma) / (lo - hi), 0, 1);
        return low + w;
    }

    /// <summary>
    /// How many of the noisiest timesteps have λ below <paramref name="lambdaMin"/> (DPM-Solver's lambda_min_clipped).
    /// </summary>
    private static int ClippedTimesteps(NoiseSchedule schedule, double lambdaMin)
    {
        if (double.IsNegativeInfinity(lambdaMin)) return 0;
        int count = 0;
        for (int t = 0; t < schedule.TrainTimesteps; t++)
            if (NoiseLevel.At(schedule, t).Lambda < lambdaMin) count++;
        return count;
    }
}
