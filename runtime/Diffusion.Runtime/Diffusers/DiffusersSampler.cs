using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Diffusers;

/// <summary>
/// The scheduler a diffusers config names, walked as diffusers walks it: its grid (<see cref="DiffusersGrid"/>) and
/// its step, which is one of the runtime's samplers — DDPM, Euler, Euler ancestral, Heun, DPM-Solver++(2M) (midpoint
/// or heun form; order 1 is DDIM; sde-dpmsolver++ is the 2M SDE), UniPC bh2 — except DDIM, whose diffusers step has a
/// quirk this class follows: from timestep t it steps to t − ⌊T/n⌋ (ᾱ_0, or 1 with set_alpha_to_one, below 0)
/// whatever the next grid timestep is. On leading grids that is the next timestep; on trailing and linspace grids
/// with T/n not whole it falls between grid points, and the next step starts from there as if at the grid point.
/// The runtime's own <c>ddim</c> sampler steps from grid point to grid point.
/// With final_sigmas_type "zero" (the only one supported) lower_order_final and euler_at_final change nothing at
/// orders 1–2: the last step to σ = 0 is first order either way.
/// </summary>
public sealed class DiffusersSampler : ISampler
{
    private readonly ISampler? _step;

    /// <summary>The sampler for <paramref name="scheduler"/>; an unsupported one fails in <see cref="Validate"/>.</summary>
    public DiffusersSampler(DiffusersScheduler scheduler)
    {
        Scheduler = scheduler;
        _step = scheduler.Unsupported is not null ? null : scheduler.Family switch
        {
            DiffusersFamily.Ddim => null,
            DiffusersFamily.Ddpm => new Ddpm(fixedLarge: scheduler.VarianceType == "fixed_large"),
            DiffusersFamily.Euler => new Euler(),
            DiffusersFamily.EulerAncestral => new EulerAncestral(),
            DiffusersFamily.Heun => new Heun(),
            DiffusersFamily.DpmSolverMultistep when scheduler.SolverOrder == 1 => new Ddim(),
            DiffusersFamily.DpmSolverMultistep when scheduler.Algorithm == "sde-dpmsolver++" => new DpmSolverPlusPlus2MSde(),
            DiffusersFamily.DpmSolverMultistep => new DpmSolverPlusPlus2M { HeunForm = scheduler.SolverType == "heun" },
            DiffusersFamily.UniPCMultistep => new UniPC(),
            _ => null,
        };
    }

    /// <summary>The diffusers settings.</summary>
    public DiffusersScheduler Scheduler { get; }

    /// <inheritdoc />
    public string Name => Scheduler.ClassName;

    /// <inheritdoc />
    public void Validate()
    {
        if (Scheduler.Unsupported is { } why)
            throw new DiffusionArgumentException($"The model's scheduler config: {why}; choose one of the runtime's samplers instead (--sampler, e.g. dpm++2m or ddim).");
    }

    /// <inheritdoc />
    public int StepsForBudget(int evaluations) => _step?.StepsForBudget(evaluations) ?? evaluations;

    /// <inheritdoc />
    public NoiseLevel[]? OwnGrid(NoiseSchedule schedule, int steps, TimestepSpacing? spacing = null, bool? karras = null)
    {
        Validate();
        var scheduler = Scheduler with { Spacing = spacing ?? Scheduler.Spacing, UseKarrasSigmas = karras ?? Scheduler.UseKarrasSigmas };
        return DiffusersGrid.Create(scheduler, schedule, steps);
    }

    /// <summary>diffusers' init_noise_sigma: σ_max (not √(σ_max² + 1)) for Euler, Euler ancestral and Heun on linspace and trailing grids.</summary>
    public double InitialNoiseScale(NoiseLevel first) =>
        Scheduler.Family is DiffusersFamily.Euler or DiffusersFamily.EulerAncestral or DiffusersFamily.Heun
        && Scheduler.Spacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? first.SigmaVp : 1;

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        Validate();
        if (_step is not null) _step.Sample(c);
        else SampleDdim(c);
    }

    /// <summary>diffusers' DDIMScheduler.step at η = 0: x′ = √ᾱ′ x̂₀ + √(1 − ᾱ′) ε̂ with ᾱ′ = ᾱ(t − ⌊T/n⌋), x̂₀ clipped and ε̂ not.</summary>
    private void SampleDdim(SamplingContext c)
    {
        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1);
        c.Model.EpsilonFromClippedSample = false; // diffusers clips x̂₀ but keeps the network's ε̂
        var alphasCumprod = c.Model.Schedule.AlphasCumprod;
        int stride = c.Model.Schedule.TrainTimesteps / c.Steps;
        for (int i = 0; i < c.Steps; i++)
        {
            var now = c.Grid[i];
            int previous = (int)Math.Round(now.Timestep) - stride;
            double alphaBar = previous >= 0 ? alphasCumprod[previous] : Scheduler.SetAlphaToOne ? 1 : alphasCumprod[0];
            c.Model.Predict(x, now, eps, x0);
            Vec.Axpby(x, Math.Sqrt(alphaBar), x0, Math.Sqrt(1 - alphaBar), eps);
            c.StepDone(i, x, SampleSpace.Vp);
        }
    }
}
