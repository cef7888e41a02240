namespace Diffusion.Runtime.Samplers;

/// <summary>
/// UniPC (Zhao et al. 2023), B(h) = e^{−h} − 1 ("bh2"), order 2, data prediction in λ = −log σ.
/// Predictor UniP-2: x̃′ = (σ′/σ) x̃ − (e^{−h}−1) D₀ − B(h)·½·(D₋₁ − D₀)/r₁. Corrector UniC: once the network has been
/// evaluated at the predicted point (that evaluation is reused by the next predictor, so NFE = steps), the point is
/// refined with x̃ᶜ = (σ′/σ) x̃ − (e^{−h}−1) D₀ − B(h)(ρ₁(D₋₁ − D₀)/r₁ + ρ₂(D′ − D₀)), ρ solving R ρ = b (Eq. 8–9).
/// Order 1 on the first step, and on the last unless <see cref="LowerOrderFinal"/> is off and the grid ends at a
/// noisy level (diffusers' final_sigmas_type "sigma_min"; to σ = 0 the order-2 predictor has no limit).
/// </summary>
public sealed class UniPC : ISampler
{
    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("unipc",
        "UniPC bh2, order 2 predictor–corrector — Zhao et al. 2023")
    {
        Aliases = ["UniPCMultistepScheduler", "UniPC"],
        IsMultistep = true,
        Create = _ => new UniPC(),
    };

    SamplerInfo ISampler.Info => Info;

    /// <summary>Order 1 on the last step (diffusers' lower_order_final).</summary>
    public bool LowerOrderFinal { get; init; } = true;

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        float[] x = c.X, current = c.Buffer(0), previous = c.Buffer(1), beforePrevious = c.Buffer(2),
            baseSample = c.Buffer(3);
        Vec.Scale(x, 1 / c.Grid[0].Alpha, x);
        int lastOrder = 0;
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            c.Model.Denoise(x, now, current);
            if (i > 0) // UniC: correct x at `now`, reached from baseSample at Grid[i−1].
                Correct(x, baseSample, c.Grid[i - 1], now, previous, lastOrder == 2 ? beforePrevious : null,
                        lastOrder == 2 ? c.Grid[i - 2] : default, current);
            int order = Math.Min(2, LowerOrderFinal || next.IsClean ? Math.Min(i + 1, c.Steps - i) : i + 1);
            x.CopyTo(baseSample);
            if (next.IsClean)
                current.CopyTo(x);
            else
                Predict(x, now, next, current, order == 2 ? previous : null, order == 2 ? c.Grid[i - 1] : default);
            (beforePrevious, previous, current) = (previous, current, beforePrevious);
            lastOrder = order;
            c.StepDone(i, x, SampleSpace.Sigma);
        }
    }

    /// <summary>UniP: x ← (σ_t/σ_s) x − φ₁ D₀ − B(h)·½·D₁ with D₁ = (D₋₁ − D₀)/r₁ (the order-2 ρ is ½).</summary>
    private static void Predict(float[] x, Schedules.NoiseLevel s, Schedules.NoiseLevel t, float[] d0, float[]? dPrev,
        Schedules.NoiseLevel sPrev)
    {
        double h = t.Lambda - s.Lambda, phi1 = double.ExpM1(-h), bh = double.ExpM1(-h);
        Vec.Axpby(x, t.Sigma / s.Sigma, x, -phi1, d0);
        if (dPrev is null) return;
        double r1 = (sPrev.Lambda - s.Lambda) / h;
        Vec.AddScaled(x, -bh * 0.5 / r1, dPrev);
        Vec.AddScaled(x, bh * 0.5 / r1, d0);
    }

    /// <summary>UniC: x ← (σ_t/σ_s) x_s − φ₁ D₀ − B(h)(ρ₁ D₁ + ρ_last (D_t − D₀)).</summary>
    private static void Correct(float[] x, float[] xs, Schedules.NoiseLevel s, Schedules.NoiseLevel t,
        float[] d0, float[]? dPrev, Schedules.NoiseLevel sPrev, float[] dt)
    {
        double h = t.Lambda - s.Lambda, hh = -h, phi1 = double.ExpM1(hh), bh = double.ExpM1(hh);
        // b_k = h φ_k(hh)·k!/B(h) with φ_{k+1} = φ_k/hh − 1/(k+1)!, from φ₁ = (e^{hh}−1)/hh − 1.
        double phiK = phi1 / hh - 1, b1 = phiK / bh;
        phiK = phiK / hh - 0.5;
        double b2 = phiK * 2 / bh;
        Vec.Axpby(x, t.Sigma / s.Sigma, xs, -phi1, d0);
        if (dPrev is null)
        {
            // Order 1: ρ = ½, the trapezoidal correction.
            Vec.AddScaled(x, -bh * 0.5, dt);
            Vec.AddScaled(x, bh * 0.5, d0);
            return;
        }
        double r1 = (sPrev.Lambda - s.Lambda) / h;
        // R = [[1, 1], [r₁, 1]], R ρ = b.
        double rho1 = (b1 - b2) / (1 - r1), rho2 = b1 - rho1;
        Vec.AddScaled(x, -bh * rho1 / r1, dPrev);
        Vec.AddScaled(x, -bh * rho2, dt);
        Vec.AddScaled(x, bh * (rho1 / r1 + rho2), d0);
    }
}
