namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Euler's method on the probability-flow ODE dx̃/dσ = (x̃ − D(x̃, σ))/σ in Karras et al. 2022's σ-space
/// (x̃ = x/α): x̃′ = x̃ + (σ′ − σ)·(x̃ − D)/σ.
/// </summary>
public sealed class Euler : ISampler
{
    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("euler",
        "Euler on the probability-flow ODE — Karras et al. 2022")
    {
        Aliases = ["sample_euler", "EulerDiscreteScheduler", "k_euler"],
        Create = _ => new Euler(),
    };

    SamplerInfo ISampler.Info => Info;

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        float[] x = c.X, denoised = c.Buffer(0);
        Vec.Scale(x, 1 / c.Grid[0].Alpha, x);
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            c.Model.Denoise(x, now, denoised);
            double ratio = next.Sigma / now.Sigma;
            Vec.Axpby(x, ratio, x, 1 - ratio, denoised);
            c.StepDone(i, x, SampleSpace.Sigma);
        }
    }
}
