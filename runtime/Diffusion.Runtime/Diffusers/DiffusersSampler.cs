using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Diffusers;

/// <summary>
/// The scheduler a diffusers config names, walked as diffusers walks it: its grid (<see cref="DiffusersGrid"/>) and its
/// step. Most steps are the runtime's samplers — Euler, Euler ancestral, Heun, linear multistep, DPM-Solver++(2M)
/// (midpoint or heun form; order 1 is DDIM, order 3 DPM-Solver++(3M) at η = 0; sde-dpmsolver++ the 2M SDE), UniPC bh2.
/// DDIM and DDPM are the runtime's own steps aimed where diffusers aims them, at t − ⌊T/n⌋ whatever the next grid
/// timestep is (on trailing and linspace grids with T/n not whole that falls between grid points, and the next step
/// starts from there as if at the grid point; the runtime's <c>ddim</c> and <c>ddpm</c> step grid point to grid point).
/// Walked here: the noise-prediction DPM-Solver, and PNDM (<see cref="PndmWalk"/>).
/// On a grid ending at σ = 0 (final_sigmas_type "zero") the last step is first order; on one ending at σ_min
/// ("sigma_min") DPMSolverMultistep takes it first order when euler_at_final, or lower_order_final with fewer than 15
/// steps (which also caps the step before at order 2 for solver_order 3), and UniPC when lower_order_final; the sample
/// is returned there as diffusers returns it (σ space x/α for Euler, x itself for the others).
/// </summary>
public sealed class DiffusersSampler : ISampler
{
    /// <summary>
    /// The sampler for <paramref name="scheduler"/>; an unsupported one fails in <see cref="Validate"/>.
    /// </summary>
    public DiffusersSampler(DiffusersScheduler scheduler)
    {
        Scheduler = scheduler;
        Info = new SamplerInfo(scheduler.ClassName,
            $"{scheduler.ClassName} as diffusers walks it (the model's scheduler config)");
    }

    /// <summary>Named after the scheduler's class; it reads no knobs, its settings come from the config.</summary>
    public SamplerInfo Info { get; }

    /// <summary>
    /// The runtime sampler that takes diffusers' step on a schedule of <paramref name="steps"/> steps (null: walked
    /// here).
    /// </summary>
    private ISampler? Step(int steps)
    {
        var s = Scheduler;
        bool lowerOrderFinal = !s.EndsAtSigmaMin || s.EulerAtFinal || (s.LowerOrderFinal && steps < 15);
        return s.Unsupported is not null ? null : s.Family switch
        {
            DiffusersFamily.Ddim => new Ddim { Target = PreviousLevel(s.SetAlphaToOne) },
            DiffusersFamily.Ddpm => new Ddpm(fixedLarge: s.VarianceType switch
            {
                "fixed_large" => true, "learned_range" => null, _ => false,
            })
            {
                Target = PreviousLevel(setAlphaToOne: true),
            },
            DiffusersFamily.Pndm => null,
            DiffusersFamily.Euler => new Euler(),
            DiffusersFamily.EulerAncestral => new EulerAncestral(),
            DiffusersFamily.Heun => new Heun(),
            DiffusersFamily.Lms => new LinearMultistep(),
            DiffusersFamily.DpmSolverMultistep when s.Algorithm is "dpmsolver" or "sde-dpmsolver" => null,
            DiffusersFamily.DpmSolverMultistep when s.SolverOrder == 1 => new Ddim(),
            DiffusersFamily.DpmSolverMultistep when s.Algorithm == "sde-dpmsolver++" => new DpmSolverPlusPlus2MSde(),
            DiffusersFamily.DpmSolverMultistep when s.SolverOrder == 3 => new DpmSolverPlusPlus3MSde
            {
                Eta = 0, MidpointSecondOrder = s.SolverType != "heun",
                LastStepOrder = lowerOrderFinal ? 1 : 3, SecondLastStepOrder = s.LowerOrderFinal && steps < 15 ? 2 : 3,
            },
            DiffusersFamily.DpmSolverMultistep => new DpmSolverPlusPlus2M
            {
                HeunForm = s.SolverType == "heun", LowerOrderFinal = lowerOrderFinal,
            },
            DiffusersFamily.UniPCMultistep => new UniPC { LowerOrderFinal = s.LowerOrderFinal },
            _ => null,
        };
    }

    /// <summary>The diffusers settings.</summary>
    public DiffusersScheduler Scheduler { get; }

    /// <inheritdoc />
    public void Validate()
    {
        if (Scheduler.Unsupported is { } why)
            throw new DiffusionArgumentException("Sampler",
                $"the model's scheduler config: {why}; choose one of the runtime's samplers " +
                    $"instead (e.g. dpm++2m or ddim).");
    }

    /// <inheritdoc />
    public int StepsForBudget(int evaluations) =>
        Scheduler.Family == DiffusersFamily.Pndm && Scheduler.Unsupported is null
            ? PndmWalk.StepsForBudget(Scheduler, evaluations)
        : Step(evaluations)?.StepsForBudget(evaluations) ?? evaluations;

    /// <inheritdoc />
    public NoiseLevel[]? OwnGrid(NoiseSchedule schedule, int steps, TimestepSpacing? spacing = null,
        bool? karras = null)
    {
        Validate();
        var scheduler = Scheduler with
        {
            Spacing = spacing ?? Scheduler.Spacing, UseKarrasSigmas = karras ?? Scheduler.UseKarrasSigmas,
        };
        return DiffusersGrid.Create(scheduler, schedule, steps);
    }

    /// <summary>
    /// diffusers' init_noise_sigma: σ_max (not √(σ_max² + 1)) for Euler, Euler ancestral, Heun and LMS on linspace and
    /// trailing grids.
    /// </summary>
    public double InitialNoiseScale(NoiseLevel first) =>
        Scheduler.Family is DiffusersFamily.Euler or DiffusersFamily.EulerAncestral or DiffusersFamily.Heun
            or DiffusersFamily.Lms
        && Scheduler.Spacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? first.SigmaVp : 1;

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        Validate();
        // x̂₀ clipped, ε̂ the network's
        if (Scheduler.Family == DiffusersFamily.Ddim) c.Model.EpsilonFromClippedSample = false;
        if (Step(c.ScheduleSteps) is { } step) step.Sample(c);
        else if (Scheduler.Family == DiffusersFamily.Pndm) PndmWalk.Sample(c, Scheduler);
        else SampleNoisePrediction(c);
        if (c.Grid[^1] is { IsClean: false } last)
        {
            // x at σ_min as diffusers returns it: in σ space for Euler, in VP space (α x̃) for the multistep solvers.
            var space = Scheduler.Family == DiffusersFamily.Euler ? SampleSpace.Sigma : SampleSpace.Vp;
            if (space != c.Space) Vec.Scale(c.X, space == SampleSpace.Vp ? last.Alpha : 1 / last.Alpha, c.X);
        }
    }

    /// <summary>
    /// DPMSolverMultistep's noise-prediction algorithms (Lu et al. 2022a's DPM-Solver, multistep; "dpmsolver" and its
    /// SDE form "sde-dpmsolver"), in VP space with α, σ of the levels and h = λ′ − λ:
    /// x′ = (α′/α) x − k σ′(eʰ − 1) ε − c D₁ (+ σ′√(e²ʰ − 1) z for the SDE), k = 1 (2 for the SDE), D₁ = (ε − ε₋₁)/r,
    /// c = k/2 · σ′(eʰ − 1) (midpoint) or k σ′((eʰ − 1)/h − 1) (heun); first order on the first step and where
    /// lower_order_final / euler_at_final say, and always at solver_order 1.
    /// </summary>
    private void SampleNoisePrediction(SamplingContext c)
    {
        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1), previous = c.Buffer(2), z = c.Buffer(3);
        bool sde = Scheduler.Algorithm == "sde-dpmsolver", heun = Scheduler.SolverType == "heun";
        bool lowerOrderFinal = !Scheduler.EndsAtSigmaMin || Scheduler.EulerAtFinal
            || (Scheduler.LowerOrderFinal && c.ScheduleSteps < 15);
        double k = sde ? 2 : 1, lastH = 0;
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            c.Model.Predict(x, now, eps, x0);
            double h = next.Lambda - now.Lambda, grow = double.ExpM1(h);
            Vec.Axpby(x, next.Alpha / now.Alpha, x, -k * next.SigmaVp * grow, eps);
            if (i > 0 && Scheduler.SolverOrder >= 2 && !(lowerOrderFinal && i == c.Steps - 1))
            {
                double r = lastH / h, second = heun ? k * next.SigmaVp * (grow / h - 1) : k / 2 * next.SigmaVp * grow;
                Vec.AddScaled(x, -second / r, eps);
                Vec.AddScaled(x, second / r, previous);
            }
            if (sde)
            {
                c.DrawNoise(z);
                Vec.AddScaled(x, next.SigmaVp * Math.Sqrt(double.ExpM1(2 * h)), z);
            }
            lastH = h;
            (eps, previous) = (previous, eps);
            c.StepDone(i, x, SampleSpace.Vp);
        }
    }

    /// <summary>
    /// diffusers' DDIM and DDPM step from t to t − ⌊T/n⌋ whatever the next grid timestep is: that level, or below
    /// t = 0 the clean level (set_alpha_to_one) or t = 0 itself.
    /// </summary>
    private static Func<SamplingContext, int, NoiseLevel> PreviousLevel(bool setAlphaToOne) => (c, i) =>
    {
        int previous = (int)Math.Round(c.Grid[i].Timestep) - c.Model.Schedule.TrainTimesteps / c.ScheduleSteps;
        return previous >= 0 ? NoiseLevel.At(c.Model.Schedule, previous)
            : setAlphaToOne ? NoiseLevel.Clean : NoiseLevel.At(c.Model.Schedule, 0);
    };
}
