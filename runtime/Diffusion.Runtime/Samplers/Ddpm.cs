using System.Numerics.Tensors;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// DDPM ancestral sampling (Ho et al. 2020, Alg. 2, over any grid t → t′): x_t′ = μ̃(x_t, x̂₀) + σ z with the
/// posterior mean μ̃ = √ᾱ_t′ β/(1−ᾱ_t) x̂₀ + √α (1−ᾱ_t′)/(1−ᾱ_t) x_t, α = ᾱ_t/ᾱ_t′, β = 1 − α, and variance
/// σ² = β̃ = β(1−ᾱ_t′)/(1−ᾱ_t) ("fixed_small"), σ² = β ("fixed_large"), or per value the network's learned
/// σ² = exp(f log β + (1 − f) log β̃), f = (v + 1)/2 ("learned_range", Nichol &amp; Dhariwal 2021). <c>ddpm</c> takes
/// the variance the model's config names (diffusers' <c>variance_type</c>, fixed_small by default); <c>ddpm-large</c>
/// always uses β.
/// </summary>
public sealed class Ddpm(bool? fixedLarge) : ISampler
{
    /// <summary><c>ddpm</c>: the variance the model's config names.</summary>
    public static SamplerInfo Info { get; } = new("ddpm",
        "DDPM ancestral, the variance the model's variance_type names (default β̃, fixed_small) — Ho et al. 2020")
    {
        Aliases = ["DDPMScheduler", "ancestral"],
        Knobs = SamplerKnobs.Resampling,
        Create = _ => new Ddpm(fixedLarge: null),
    };

    /// <summary><c>ddpm-large</c>: always the variance β.</summary>
    public static SamplerInfo LargeInfo { get; } = Info with
    {
        Name = "ddpm-large",
        Description = "DDPM ancestral, variance β (fixed_large) — Ho et al. 2020",
        Aliases = [],
        Create = _ => new Ddpm(fixedLarge: true),
    };

    SamplerInfo ISampler.Info => fixedLarge == true ? LargeInfo : Info;

    /// <summary>
    /// The level step i lands on; null: the grid's next level. diffusers' own scheduler goes to t − ⌊T/n⌋ instead
    /// (<see cref="Diffusers.DiffusersSampler"/>), which on some grids falls between grid points.
    /// </summary>
    internal Func<SamplingContext, int, Schedules.NoiseLevel>? Target { get; init; }

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1), z = c.Buffer(2);
        bool large = fixedLarge ?? c.Model.Config.VarianceType == "fixed_large";
        bool learned = fixedLarge is null && c.Model.LearnsVariance;
        float[] sigma = learned ? c.Buffer(3) : [];
        for (int i = 0; i < c.Steps; i++)
        for (int r = 0; r < c.Options.Resampling; r++)
        {
            var (now, next) = (c.Grid[i], Target?.Invoke(c, i) ?? c.Grid[i + 1]);
            if (r > 0) Resampling.Renoise(c, x, now, next, z);
            c.Model.Predict(x, now, eps, x0);
            double alpha = now.AlphaBar / next.AlphaBar, beta = 1 - alpha;
            Vec.Axpby(x, Math.Sqrt(alpha) * (1 - next.AlphaBar) / (1 - now.AlphaBar), x,
                         Math.Sqrt(next.AlphaBar) * beta / (1 - now.AlphaBar), x0);
            if (!next.IsClean)
            {
                double small = beta * (1 - next.AlphaBar) / (1 - now.AlphaBar);
                c.DrawNoise(z);
                if (learned)
                {
                    // σ = exp(½ (f log β + (1 − f) log β̃)), f = (v + 1)/2: ½ log β̃ + ¼ (v + 1)(log β − log β̃)
                    double lb = Math.Log(beta), ls = Math.Log(small);
                    TensorPrimitives.Add(c.Model.VarianceValues, 1f, sigma);
                    TensorPrimitives.Multiply(sigma, (float)(0.25 * (lb - ls)), sigma);
                    TensorPrimitives.Add(sigma, (float)(0.5 * ls), sigma);
                    TensorPrimitives.Exp(sigma, sigma);
                    TensorPrimitives.MultiplyAdd(sigma, z, x, x);
                }
                else Vec.AddScaled(x, Math.Sqrt(large ? beta : small), z);
            }
            c.StepDone(i, x, SampleSpace.Vp);
            if (next.IsClean) break;
        }
    }
}
