namespace Diffusion.Runtime.Samplers;

/// <summary>
/// DPM-Solver++(2M) SDE (Lu et al. 2022, §5, midpoint form as in k-diffusion): with h = λ′ − λ and η (default 1),
/// x̃′ = (σ′/σ) e^{−ηh} x̃ + (1 − e^{−(1+η)h}) D + ½(1 − e^{−(1+η)h})(D − D_prev)/r + σ′ √(1 − e^{−2ηh}) z.
/// </summary>
public sealed class DpmSolverPlusPlus2MSde : ISampler
{
    private static readonly SamplerOptions Defaults = new() { Eta = 1 };

    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("dpm++2m-sde",
        "DPM-Solver++(2M) SDE, η = 1 — Lu et al. 2022")
    {
        Aliases = ["dpmpp_2m_sde", "DPM++ 2M SDE", "sample_dpmpp_2m_sde"],
        Knobs = SamplerKnobs.Eta,
        Defaults = Defaults,
        IsMultistep = true,
        Create = o => new DpmSolverPlusPlus2MSde { Eta = o.Eta ?? Defaults.Eta!.Value },
    };

    SamplerInfo ISampler.Info => Info;

    /// <summary>Stochasticity η: 0 is the deterministic (ODE) update, 1 the full ancestral noise.</summary>
    public double Eta { get; init; } = Defaults.Eta!.Value;

    /// <inheritdoc />
    public void Validate() => SamplerSettings.CheckEta(Eta);

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        double eta = Eta;
        float[] x = c.X, denoised = c.Buffer(0), previous = c.Buffer(1), z = c.Buffer(2);
        Vec.Scale(x, 1 / c.Grid[0].Alpha, x);
        double lastH = 0;
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            c.Model.Denoise(x, now, denoised);
            if (next.IsClean)
            {
                denoised.CopyTo(x);
            }
            else
            {
                double h = next.Lambda - now.Lambda, etaH = eta * h;
                double phi = -double.ExpM1(-h - etaH);
                Vec.Axpby(x, next.Sigma / now.Sigma * Math.Exp(-etaH), x, phi, denoised);
                if (i > 0)
                {
                    double r = lastH / h;
                    Vec.AddScaled(x, 0.5 * phi / r, denoised);
                    Vec.AddScaled(x, -0.5 * phi / r, previous);
                }
                if (eta > 0)
                {
                    c.DrawNoise(z);
                    Vec.AddScaled(x, next.Sigma * Math.Sqrt(-double.ExpM1(-2 * etaH)), z);
                }
                lastH = h;
            }
            (denoised, previous) = (previous, denoised);
            c.StepDone(i, x, SampleSpace.Sigma);
        }
    }
}
