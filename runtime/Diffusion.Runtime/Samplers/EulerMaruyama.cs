namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Euler–Maruyama on the reverse-time VP SDE (Song et al. 2021, Eq. 6 with f = −½βx, g = √β):
/// x_t′ = x + (½B x + B ∇log p) + √B z, with ∇log p = −ε̂/σ and B = ∫β = ln(ᾱ_t′/ᾱ_t) over the step.
/// The last step returns x̂₀ (Tweedie denoising, score_sde's <c>denoise=True</c>).
/// </summary>
public sealed class EulerMaruyama : ISampler
{
    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("euler-maruyama",
        "Euler–Maruyama on the reverse VP SDE — Song et al. 2021")
    {
        Aliases = ["em", "sde"],
        Create = _ => new EulerMaruyama(),
    };

    SamplerInfo ISampler.Info => Info;

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1), z = c.Buffer(2);
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            c.Model.Predict(x, now, eps, x0);
            if (next.IsClean)
            {
                x0.CopyTo(x);
            }
            else
            {
                double b = Math.Log(next.AlphaBar / now.AlphaBar);
                Vec.Axpby(x, 1 + b / 2, x, -b / now.SigmaVp, eps);
                c.DrawNoise(z);
                Vec.AddScaled(x, Math.Sqrt(b), z);
            }
            c.StepDone(i, x, SampleSpace.Vp);
        }
    }
}
