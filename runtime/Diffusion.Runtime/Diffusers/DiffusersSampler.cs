using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Diffusers;

/// <summary>
/// The scheduler a diffusers config names, walked as diffusers walks it: its grid (<see cref="DiffusersGrid"/>) and its
/// step. Most steps are the runtime's samplers — Euler, Euler ancestral, Heun, linear multistep, DPM-Solver++(2M)
/// (midpoint or heun form; order 1 is DDIM, order 3 DPM-Solver++(3M) at η = 0; sde-dpmsolver++ the 2M SDE), UniPC bh2.
/// Walked here: DDIM and DDPM, whose diffusers steps go from t to t − ⌊T/n⌋ whatever the next grid timestep is (on
/// trailing and linspace grids with T/n not whole that falls between grid points, and the next step starts from there
/// as if at the grid point; the runtime's own <c>ddim</c> and <c>ddpm</c> step grid point to grid point), the
/// noise-prediction DPM-Solver, and PNDM (<see cref="PndmWalk"/>).
/// On a grid ending at σ = 0 (final_sigmas_type "zero") the last step is first order; on one ending at σ_min
/// ("sigma_min") DPMSolverMultistep takes it first order when euler_at_final, or lower_order_final with fewer than 15
/// steps (which also caps the step before at order 2 for solver_order 3), and UniPC when lower_order_final; the sample
/// is returned there as diffusers returns it (σ space x/α for Euler, x itself for the others).
/// </summary>
public sealed class DiffusersSampler : ISampler
{
    /// <summary>The sampler for <paramref name="scheduler"/>; an unsupported one fails in <see cref="Validate"/>.</summary>
    public DiffusersSampler(DiffusersScheduler scheduler) => Scheduler = scheduler;

    /// <summary>The runtime sampler that takes diffusers' step for <paramref name="steps"/> steps (null for DDIM, walked here).</summary>
    private ISampler? Step(int steps)
    {
        var s = Scheduler;
        bool lowerOrderFinal = !s.EndsAtSigmaMin || s.EulerAtFinal || (s.LowerOrderFinal && steps < 15);
        return s.Unsupported is not null ? null : s.Family switch
        {
            DiffusersFamily.Ddim or DiffusersFamily.Ddpm or DiffusersFamily.Pndm => null,
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
            DiffusersFamily.DpmSolverMultistep => new DpmSolverPlusPlus2M { HeunForm = s.SolverType == "heun", LowerOrderFinal = lowerOrderFinal },
            DiffusersFamily.UniPCMultistep => new UniPC { LowerOrderFinal = s.LowerOrderFinal },
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
    public int StepsForBudget(int evaluations) =>
        Scheduler.Family == DiffusersFamily.Pndm && Scheduler.Unsupported is null ? PndmWalk.StepsForBudget(Scheduler, evaluations)
        : Step(evaluations)?.StepsForBudget(evaluations) ?? evaluations;

    /// <inheritdoc />
    public NoiseLevel[]? OwnGrid(NoiseSchedule schedule, int steps, TimestepSpacing? spacing = null, bool? karras = null)
    {
        Validate();
        var scheduler = Scheduler with { Spacing = spacing ?? Scheduler.Spacing, UseKarrasSigmas = karras ?? Scheduler.UseKarrasSigmas };
        return DiffusersGrid.Create(scheduler, schedule, steps);
    }

    /// <summary>diffusers' init_noise_sigma: σ_max (not √(σ_max² + 1)) for Euler, Euler ancestral, Heun and LMS on linspace and trailing grids.</summary>
    public double InitialNoiseScale(NoiseLevel first) =>
        Scheduler.Family is DiffusersFamily.Euler or DiffusersFamily.EulerAncestral or DiffusersFamily.Heun or DiffusersFamily.Lms
        && Scheduler.Spacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? first.SigmaVp : 1;

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        Validate();
        if (Step(c.Steps) is { } step) step.Sample(c);
        else if (Scheduler.Family == DiffusersFamily.Ddpm) SampleDdpm(c);
        else if (Scheduler.Family == DiffusersFamily.Pndm) PndmWalk.Sample(c, Scheduler);
        else if (Scheduler.Family == DiffusersFamily.DpmSolverMultistep) SampleNoisePrediction(c);
        else SampleDdim(c);
        if (c.Grid[^1] is { IsClean: false } last)
        {
            // x at σ_min as diffusers returns it: in σ space for Euler, in VP space (α x̃) for the multistep solvers.
            var space = Scheduler.Family == DiffusersFamily.Euler ? SampleSpace.Sigma : SampleSpace.Vp;
            if (space != c.Space) Vec.Scale(c.X, space == SampleSpace.Vp ? last.Alpha : 1 / last.Alpha, c.X);
        }
    }

    /// <summary>diffusers' DDIMScheduler.step at η = 0: x′ = √ᾱ′ x̂₀ + √(1 − ᾱ′) ε̂ with ᾱ′ = ᾱ(t − ⌊T/n⌋), x̂₀ clipped and ε̂ not.</summary>
    private void SampleDdim(SamplingContext c)
    {
        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1);
        c.Model.EpsilonFromClippedSample = false; // diffusers clips x̂₀ but keeps the network's ε̂
        for (int i = 0; i < c.Steps; i++)
        {
            var now = c.Grid[i];
            double alphaBar = PreviousAlphaBar(c, now, Scheduler.SetAlphaToOne);
            c.Model.Predict(x, now, eps, x0);
            Vec.Axpby(x, Math.Sqrt(alphaBar), x0, Math.Sqrt(1 - alphaBar), eps);
            c.StepDone(i, x, SampleSpace.Vp);
        }
    }

    /// <summary>
    /// diffusers' DDPMScheduler.step: the posterior q(x_t′ | x_t, x̂₀) with ᾱ′ = ᾱ(t − ⌊T/n⌋) (1 below 0), variance
    /// β̃ = (1 − ᾱ′)/(1 − ᾱ)·β (fixed_small, and fixed_small_log, the same in diffusers' step) or β = 1 − ᾱ/ᾱ′
    /// (fixed_large), no noise from t = 0.
    /// </summary>
    private void SampleDdpm(SamplingContext c)
    {
        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1), z = c.Buffer(2);
        for (int i = 0; i < c.Steps; i++)
        {
            var now = c.Grid[i];
            double alphaBar = now.AlphaBar, previous = PreviousAlphaBar(c, now, setAlphaToOne: true), beta = 1 - alphaBar / previous;
            c.Model.Predict(x, now, eps, x0);
            Vec.Axpby(x, Math.Sqrt(alphaBar / previous) * (1 - previous) / (1 - alphaBar), x, Math.Sqrt(previous) * beta / (1 - alphaBar), x0);
            if (Math.Round(now.Timestep) > 0)
            {
                double variance = Scheduler.VarianceType == "fixed_large" ? beta : Math.Max(beta * (1 - previous) / (1 - alphaBar), 1e-20);
                c.DrawNoise(z);
                Vec.AddScaled(x, Math.Sqrt(variance), z);
            }
            c.StepDone(i, x, SampleSpace.Vp);
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
        bool lowerOrderFinal = !Scheduler.EndsAtSigmaMin || Scheduler.EulerAtFinal || (Scheduler.LowerOrderFinal && c.Steps < 15);
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

    /// <summary>ᾱ at t − ⌊T/n⌋ for grid level <paramref name="now"/>: below t = 0, 1 (set_alpha_to_one) or ᾱ_0.</summary>
    private static double PreviousAlphaBar(SamplingContext c, NoiseLevel now, bool setAlphaToOne)
    {
        int previous = (int)Math.Round(now.Timestep) - c.Model.Schedule.TrainTimesteps / c.Steps;
        return previous >= 0 ? c.Model.Schedule.AlphasCumprod[previous] : setAlphaToOne ? 1 : c.Model.Schedule.AlphasCumprod[0];
    }
}
