namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Euler ancestral in σ-space (x̃ = x/α; k-diffusion's "Euler a"): split the step σ → σ′ into a deterministic Euler
/// step to σ↓ and fresh noise of size σ↑, with σ↑ = min(σ′, η σ′ √(σ² − σ′²)/σ) and σ↓ = √(σ′² − σ↑²), so that x̃′ =
/// (σ↓/σ) x̃ + (1 − σ↓/σ) D + σ↑ z. η = 1 (default) is the ancestral DDPM step on the σ grid; η = 0 is Euler.
/// </summary>
public sealed class EulerAncestral : ISampler
{
    private static readonly SamplerOptions Defaults = new() { Eta = 1 };

    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("euler-ancestral",
        "Euler ancestral (k-diffusion's Euler a), η = 1 — Karras et al. 2022 / Crowson")
    {
        Aliases = ["euler_a", "euler a", "sample_euler_ancestral", "EulerAncestralDiscreteScheduler", "k_euler_a"],
        Knobs = SamplerKnobs.Eta,
        Defaults = Defaults,
        Create = o => new EulerAncestral { Eta = o.Eta ?? Defaults.Eta!.Value },
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
        float[] x = c.X, denoised = c.Buffer(0), z = c.Buffer(1);
        Vec.Scale(x, 1 / c.Grid[0].Alpha, x);
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            c.Model.Denoise(x, now, denoised);
            double up = Math.Min(next.Sigma,
                eta * next.Sigma * Math.Sqrt(Math.Max(0, now.Sigma * now.Sigma - next.Sigma * next.Sigma)) / now.Sigma);
            double down = Math.Sqrt(next.Sigma * next.Sigma - up * up);
            double ratio = down / now.Sigma;
            Vec.Axpby(x, ratio, x, 1 - ratio, denoised);
            if (up > 0)
            {
                c.DrawNoise(z);
                Vec.AddScaled(x, up, z);
            }
            c.StepDone(i, x, SampleSpace.Sigma);
        }
    }
}
