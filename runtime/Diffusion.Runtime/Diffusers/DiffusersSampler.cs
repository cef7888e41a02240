using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Diffusers;

/// <summary>
/// The scheduler a diffusers config names, walked as diffusers walks it: its grid (<see cref="DiffusersGrid"/>) and
/// its step, which is one of the runtime's samplers — DDPM, Euler, Euler ancestral, Heun, linear multistep, DPM-Solver++(2M) (midpoint
/// or heun form; order 1 is DDIM, order 3 DPM-Solver++(3M) at η = 0; sde-dpmsolver++ is the 2M SDE), UniPC bh2 — except DDIM, whose diffusers step has a
/// quirk this class follows: from timestep t it steps to t − ⌊T/n⌋ (ᾱ_0, or 1 with set_alpha_to_one, below 0)
/// whatever the next grid timestep is. On leading grids that is the next timestep; on trailing and linspace grids
/// with T/n not whole it falls between grid points, and the next step starts from there as if at the grid point.
/// diffusers' DDPM has the same quirk (its posterior goes to t − ⌊T/n⌋, and it adds no noise from t = 0).
/// The runtime's own <c>ddim</c> and <c>ddpm</c> samplers step from grid point to grid point.
/// On a grid ending at σ = 0 (final_sigmas_type "zero") the last step is first order; on one ending at σ_min
/// ("sigma_min") DPMSolverMultistep takes it first order when euler_at_final, or lower_order_final with fewer than 15
/// steps (which also caps the step before at order 2 for solver_order 3), and UniPC when lower_order_final; the sample is returned there as diffusers returns it (σ space x/α for
/// Euler, x itself for the others).
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
    public int StepsForBudget(int evaluations) => Step(evaluations)?.StepsForBudget(evaluations) ?? evaluations;

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
        else if (Scheduler.Family == DiffusersFamily.Pndm) SamplePndm(c);
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

    /// <summary>
    /// diffusers' PNDMScheduler (Liu et al. 2022), its state machine followed call by call: the network's outputs are
    /// combined — 3 pseudo Runge–Kutta steps of 4 evaluations first (at t and t − ⌊T/n⌋/2), or with skip_prk_steps
    /// (Stable Diffusion's PLMS) a first step evaluated twice and averaged — then Adams–Bashforth on up to 4 past outputs;
    /// each combination moves x from t to t′ by PNDM's transfer, x′ = √(ᾱ′/ᾱ) x − (ᾱ′ − ᾱ) e/(ᾱ√(1 − ᾱ′) + √(ᾱ(1 − ᾱ)ᾱ′)),
    /// with e the combined ε (a v-prediction combination is turned into ε with the x it is applied to, as diffusers does).
    /// </summary>
    private void SamplePndm(SamplingContext c)
    {
        if (c.Constraint is not null) throw new DiffusionException("PNDMScheduler evaluates the network between grid levels and cannot keep inpainting constraints; use a grid sampler (ddim, dpm++2m, …).");
        var schedule = c.Model.Schedule;
        int T = schedule.TrainTimesteps, n = c.Steps, stride = T / n;
        var ascending = Enumerable.Range(0, n).Select(i => (int)Math.Round(c.Grid[n - 1 - i].Timestep)).ToArray();
        int[] prk = [], plms;
        if (Scheduler.SkipPrkSteps)
            plms = [.. ascending[..^1], .. n > 1 ? [ascending[^2]] : (int[])[], ascending[^1]];
        else
        {
            var top = ascending[Math.Max(0, n - 4)..];
            var pairs = top.SelectMany(t => new[] { t, t + stride / 2 }).ToArray();
            prk = pairs[..^1].SelectMany(t => new[] { t, t }).ToArray()[1..^1];
            plms = ascending[..Math.Max(0, n - 3)];
        }
        Array.Reverse(prk);
        Array.Reverse(plms);
        var timesteps = prk.Concat(plms).ToArray();

        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1), combined = c.Buffer(2), current = c.Buffer(3), accumulated = c.Buffer(4);
        var ets = new List<float[]>(4);
        var spare = new Queue<float[]>(Enumerable.Range(5, 5).Select(c.Buffer));
        bool haveCurrent = false;
        double finalAlphaBar = Scheduler.SetAlphaToOne ? 1 : schedule.AlphasCumprod[0];
        double AlphaBar(int t) => t >= 0 ? schedule.AlphasCumprod[t] : finalAlphaBar;
        bool velocity = c.Model.Config.Prediction == Onnx.PredictionType.VPrediction;
        void Transfer(float[] sample, int t, int previous, float[] output)
        {
            double a = AlphaBar(t), ap = AlphaBar(previous);
            if (velocity) Vec.Axpby(output, Math.Sqrt(a), output, Math.Sqrt(1 - a), sample); // v → ε with this sample
            double denominator = a * Math.Sqrt(1 - ap) + Math.Sqrt(a * (1 - a) * ap);
            Vec.Axpby(x, Math.Sqrt(ap / a), sample, -(ap - a) / denominator, output);
        }
        for (int counter = 0; counter < timesteps.Length; counter++)
        {
            int t = timesteps[counter];
            var level = NoiseLevel.At(schedule, t);
            c.Model.Predict(x, level, eps, x0);
            var output = spare.Count > 0 ? spare.Dequeue() : ets[0];
            // The network's own output: ε, or v = √ᾱ ε − √(1 − ᾱ) x̂₀.
            if (velocity) Vec.Axpby(output, level.Alpha, eps, -level.SigmaVp, x0);
            else eps.CopyTo(output, 0);
            if (counter < prk.Length)
            {
                int previous = t - (counter % 2 == 1 ? 0 : stride / 2);
                int from = prk[counter / 4 * 4];
                switch (counter % 4)
                {
                    case 0:
                        Vec.Scale(accumulated, 1 / 6.0, output);
                        Keep(output);
                        x.CopyTo(current, 0);
                        haveCurrent = true;
                        output.CopyTo(combined, 0);
                        break;
                    case 1 or 2:
                        Vec.AddScaled(accumulated, 1 / 3.0, output);
                        output.CopyTo(combined, 0);
                        Release(output);
                        break;
                    default:
                        Vec.Axpby(combined, 1, accumulated, 1 / 6.0, output);
                        Release(output);
                        break;
                }
                Transfer(haveCurrent ? current : x, from, previous, combined);
            }
            else
            {
                int from = t, previous = t - stride;
                var sample = x;
                if (counter != 1) Keep(output);
                else (from, previous) = (t + stride, t);
                if (ets.Count == 1 && counter == 0)
                {
                    ets[^1].CopyTo(combined, 0);
                    x.CopyTo(current, 0);
                }
                else if (ets.Count == 1 && counter == 1)
                {
                    Vec.Axpby(combined, 0.5, output, 0.5, ets[^1]);
                    Release(output);
                    current.CopyTo(x, 0);
                }
                else if (ets.Count == 2) Vec.Axpby(combined, 1.5, ets[^1], -0.5, ets[^2]);
                else if (ets.Count == 3)
                {
                    Vec.Axpby(combined, 23 / 12.0, ets[^1], -16 / 12.0, ets[^2]);
                    Vec.AddScaled(combined, 5 / 12.0, ets[^3]);
                }
                else
                {
                    Vec.Axpby(combined, 55 / 24.0, ets[^1], -59 / 24.0, ets[^2]);
                    Vec.AddScaled(combined, 37 / 24.0, ets[^3]);
                    Vec.AddScaled(combined, -9 / 24.0, ets[^4]);
                }
                Transfer(sample, from, previous, combined);
            }
            c.Progress(Math.Min(n - 1, counter * n / timesteps.Length));
        }

        // ets holds the last four outputs; older buffers return to the spare queue.
        void Keep(float[] output)
        {
            ets.Add(output);
            if (ets.Count > 4)
            {
                spare.Enqueue(ets[0]);
                ets.RemoveAt(0);
            }
        }
        void Release(float[] output)
        {
            if (!ets.Contains(output)) spare.Enqueue(output);
        }
    }

    /// <summary>ᾱ at t − ⌊T/n⌋ for grid level <paramref name="now"/>: below t = 0, 1 (set_alpha_to_one) or ᾱ_0.</summary>
    private static double PreviousAlphaBar(SamplingContext c, NoiseLevel now, bool setAlphaToOne)
    {
        int previous = (int)Math.Round(now.Timestep) - c.Model.Schedule.TrainTimesteps / c.Steps;
        return previous >= 0 ? c.Model.Schedule.AlphasCumprod[previous] : setAlphaToOne ? 1 : c.Model.Schedule.AlphasCumprod[0];
    }
}
