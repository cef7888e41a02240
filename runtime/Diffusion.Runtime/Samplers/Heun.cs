namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Alg. 1): an Euler step to σ′, then
/// the trapezoidal average of the slopes d = (x̃ − D)/σ at both ends; the final step to σ = 0 is plain Euler.
/// </summary>
public sealed class Heun : ISampler
{
    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("heun",
        "Heun (2nd order) on the probability-flow ODE, 2 NFE/step — Karras et al. 2022")
    {
        Aliases = ["sample_heun", "HeunDiscreteScheduler", "k_heun"],
        Create = _ => new Heun(),
    };

    SamplerInfo ISampler.Info => Info;

    /// <inheritdoc />
    // 2 per step, the last (to σ = 0) an Euler step of 1
    public int StepsForBudget(int evaluations) => (evaluations + 1) / 2;

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        float[] x = c.X, denoised = c.Buffer(0), d = c.Buffer(1), xEuler = c.Buffer(2), d2 = c.Buffer(3);
        Vec.Scale(x, 1 / c.Grid[0].Alpha, x);
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            double dt = next.Sigma - now.Sigma;
            c.Model.Denoise(x, now, denoised);
            Vec.Axpby(d, 1 / now.Sigma, x, -1 / now.Sigma, denoised);
            if (next.IsClean)
            {
                Vec.AddScaled(x, dt, d);
            }
            else
            {
                Vec.Axpby(xEuler, 1, x, dt, d);
                c.Model.Denoise(xEuler, next, denoised);
                Vec.Axpby(d2, 1 / next.Sigma, xEuler, -1 / next.Sigma, denoised);
                Vec.AddScaled(x, dt / 2, d);
                Vec.AddScaled(x, dt / 2, d2);
            }
            c.StepDone(i, x, SampleSpace.Sigma);
        }
    }
}
