namespace Diffusion.Runtime.Samplers;

/// <summary>
/// DDIM (Song, Meng &amp; Ermon 2021, Eq. 12): x_t′ = √ᾱ_t′ x̂₀ + √(1 − ᾱ_t′ − σ²) ε̂ + σ z with
/// σ = η √((1−ᾱ_t′)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_t′); η = 0 is deterministic, η = 1 matches DDPM's posterior variance.
/// </summary>
public sealed class Ddim : ISampler
{
    private static readonly SamplerOptions Defaults = new() { Eta = 0 };

    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("ddim",
        "DDIM, η = 0 deterministic … 1 ancestral — Song, Meng & Ermon 2021")
    {
        Aliases = ["DDIMScheduler"],
        Knobs = SamplerKnobs.Eta | SamplerKnobs.Resampling,
        Defaults = Defaults,
        Create = o => new Ddim { Eta = o.Eta ?? Defaults.Eta!.Value },
    };

    SamplerInfo ISampler.Info => Info;

    /// <summary>Stochasticity η: 0 is the deterministic (ODE) update, 1 the full ancestral noise.</summary>
    public double Eta { get; init; } = Defaults.Eta!.Value;

    /// <inheritdoc />
    public void Validate() => SamplerSettings.CheckEta(Eta);

    /// <summary>
    /// The level step i lands on; null: the grid's next level. diffusers' own scheduler goes to t − ⌊T/n⌋ instead
    /// (<see cref="Diffusers.DiffusersSampler"/>), which on some grids falls between grid points.
    /// </summary>
    internal Func<SamplingContext, int, Schedules.NoiseLevel>? Target { get; init; }

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        double eta = Eta;
        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1), z = c.Buffer(2);
        for (int i = 0; i < c.Steps; i++)
        for (int r = 0; r < c.Options.Resampling; r++)
        {
            var (now, next) = (c.Grid[i], Target?.Invoke(c, i) ?? c.Grid[i + 1]);
            if (r > 0) Resampling.Renoise(c, x, now, next, z);
            c.Model.Predict(x, now, eps, x0);
            double sigma = eta * Math.Sqrt((1 - next.AlphaBar) / (1 - now.AlphaBar) * (1 - now.AlphaBar / next.AlphaBar));
            Vec.Axpby(x, Math.Sqrt(next.AlphaBar), x0, Math.Sqrt(Math.Max(0, 1 - next.AlphaBar - sigma * sigma)), eps);
            if (sigma > 0)
            {
                c.DrawNoise(z);
                Vec.AddScaled(x, sigma, z);
            }
            c.StepDone(i, x, SampleSpace.Vp);
            if (next.IsClean) break;
        }
    }
}
