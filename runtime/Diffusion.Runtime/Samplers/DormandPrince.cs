using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Adaptive Dormand–Prince RK5(4) (Dormand &amp; Prince 1980; scipy's RK45) on the probability-flow ODE written in s =
/// log σ: dx̃/ds = x̃ − D(x̃, eˢ), from the grid's first σ to the schedule's σ_min = σ(t = 0), then x₀ = D(x̃, σ_min).
/// Step size is controlled per image (error ≤ atol + rtol·|x̃|, RMS), so an image's result never depends on its batch.
/// Ignores the rest of the grid; network evaluations used are in <see cref="Denoiser.Evaluations"/>.
/// </summary>
public sealed class DormandPrince : ISampler
{
    private static readonly SamplerOptions Defaults = new()
    {
        RelativeTolerance = 1e-3, AbsoluteTolerance = 1e-3, MaxEvaluations = 20_000,
    };

    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("rk45",
        "Adaptive Dormand–Prince RK45 on the PF-ODE (rtol/atol; chooses its own steps) — Song et al. 2021")
    {
        Aliases = ["dopri5", "dormand-prince", "ode"],
        Knobs = SamplerKnobs.Tolerances,
        Defaults = Defaults,
        IsAdaptive = true,
        Create = o => new DormandPrince
        {
            RelativeTolerance = o.RelativeTolerance ?? Defaults.RelativeTolerance!.Value,
            AbsoluteTolerance = o.AbsoluteTolerance ?? Defaults.AbsoluteTolerance!.Value,
            MaxEvaluations = o.MaxEvaluations ?? Defaults.MaxEvaluations!.Value,
        },
    };

    SamplerInfo ISampler.Info => Info;

    /// <summary>
    /// Relative tolerance of the local error (per value, against the larger of |x| before and after).
    /// </summary>
    public double RelativeTolerance { get; init; } = Defaults.RelativeTolerance!.Value;

    /// <summary>Absolute tolerance of the local error.</summary>
    public double AbsoluteTolerance { get; init; } = Defaults.AbsoluteTolerance!.Value;

    /// <summary>Most network evaluations for one batch before giving up.</summary>
    public int MaxEvaluations { get; init; } = Defaults.MaxEvaluations!.Value;

    /// <inheritdoc />
    public void Validate()
    {
        if (!(RelativeTolerance > 0 && RelativeTolerance <= 1))
            throw new DiffusionArgumentException(nameof(RelativeTolerance),
                $"expected a tolerance in (0, 1], got {RelativeTolerance}.");
        if (!(AbsoluteTolerance > 0 && AbsoluteTolerance <= 1))
            throw new DiffusionArgumentException(nameof(AbsoluteTolerance),
                $"expected a tolerance in (0, 1], got {AbsoluteTolerance}.");
        if (MaxEvaluations < 1)
            throw new DiffusionArgumentException(nameof(MaxEvaluations),
                $"expected a positive number, got {MaxEvaluations}.");
    }

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        if (c.Constraint is not null) throw new DiffusionArgumentException("Sampler",
                "rk45 chooses its own steps per image and cannot keep inpainting constraints; use a grid sampler " +
                    "(ddpm, ddim, dpm++2m, …).");
        int batch = c.BatchSize;
        var k = new float[DormandPrinceTableau.Stages][];
        for (int j = 0; j < k.Length; j++) k[j] = c.Buffer(j);
        float[] x = c.X, stage = c.Buffer(7), denoised = c.Buffer(8), error = c.Buffer(9);
        var schedule = c.Model.Schedule;
        double sStart = Math.Log(c.Grid[0].Sigma), sEnd = Math.Log(Math.Min(schedule.SigmaMin, c.Grid[0].Sigma));
        var s = new double[batch];
        var h = new double[batch];
        var levels = new NoiseLevel[batch];
        // the denoiser is shared by every batch of a request: count this batch's own
        long evaluationsBefore = c.Model.Evaluations;
        Array.Fill(s, sStart);
        Array.Fill(h, sStart == sEnd ? 0 : (sEnd - sStart) / 10);
        Vec.Scale(x, 1 / c.Grid[0].Alpha, x);
        Slope(c, x, s, h, 0, levels, denoised, k[0]);

        int accepted = 0;
        while (Array.Exists(h, v => v != 0))
        {
            if (c.Model.Evaluations - evaluationsBefore > MaxEvaluations)
                throw new DiffusionException(nameof(RelativeTolerance),
                    $"rk45 did not reach σ_min within {MaxEvaluations} network evaluations; loosen the tolerances.");
            for (int j = 1; j < k.Length; j++)
            {
                for (int b = 0; b < batch; b++)
                {
                    var y = c.Image(stage, b);
                    c.Image(x, b).CopyTo(y);
                    for (int m = 0; m < j; m++)
                        if (DormandPrinceTableau.Coefficient(j, m) is var a and not 0)
                            Vec.AddScaled(y, h[b] * a, c.Image(k[m], b));
                }
                Slope(c, stage, s, h, DormandPrinceTableau.Node(j), levels, denoised, k[j]);
            }
            // stage now holds the fifth-order solution at s + h; k[6] is its slope (first-same-as-last).
            bool anyAccepted = false;
            for (int b = 0; b < batch; b++)
            {
                if (h[b] == 0) continue;
                var err = c.Image(error, b);
                err.Clear();
                for (int m = 0; m < k.Length; m++)
                    if (DormandPrinceTableau.ErrorWeight(m) is var e and not 0)
                        Vec.AddScaled(err, h[b] * e, c.Image(k[m], b));
                double norm = ErrorNorm(err, c.Image(x, b), c.Image(stage, b));
                double factor = DormandPrinceTableau.StepFactor(norm);
                if (norm <= 1)
                {
                    c.Image(stage, b).CopyTo(c.Image(x, b));
                    c.Image(k[^1], b).CopyTo(c.Image(k[0], b));
                    s[b] += h[b];
                    anyAccepted = true;
                }
                double remaining = sEnd - s[b];
                // h < 0: never step past σ_min
                h[b] = Math.Abs(remaining) < 1e-12 ? 0 : Math.Max(h[b] * factor, remaining);
            }
            if (anyAccepted) c.Progress(accepted++);
        }
        c.Model.Denoise(x, NoiseLevel.OfSigma(schedule, Math.Exp(sEnd)), denoised);
        denoised.CopyTo(x);
    }

    /// <summary>dx̃/ds = x̃ − D(x̃, e^{s + c·h}) for every image at its own s.</summary>
    private static void Slope(SamplingContext c, float[] xTilde, double[] s, double[] h, double cj, NoiseLevel[] levels,
        float[] denoised, float[] slope)
    {
        for (int b = 0; b < levels.Length; b++)
            levels[b] = NoiseLevel.OfSigma(c.Model.Schedule, Math.Exp(s[b] + cj * h[b]));
        c.Model.Denoise(xTilde, levels, denoised);
        Vec.Axpby(slope, 1, xTilde, -1, denoised);
    }

    private double ErrorNorm(ReadOnlySpan<float> err, ReadOnlySpan<float> x, ReadOnlySpan<float> xNew)
    {
        double sum = 0;
        for (int j = 0; j < err.Length; j++)
        {
            double scale = AbsoluteTolerance + RelativeTolerance * Math.Max(Math.Abs(x[j]), Math.Abs(xNew[j]));
            double e = err[j] / scale;
            sum += e * e;
        }
        return Math.Sqrt(sum / err.Length);
    }
}
