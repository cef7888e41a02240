namespace Diffusion.Runtime.Samplers;

/// <summary>
/// DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), data prediction in λ = −log σ: x̃′ = (σ′/σ) x̃ − (e^{−h} − 1) D̄ with
/// h = λ′ − λ and D̄ = (1 + 1/2r) D_i − (1/2r) D_{i−1}, r = h_{i−1}/h; first-order on the first and last step.
/// <see cref="HeunForm"/> takes the other second-order term of Lu et al.'s Alg. 2 (diffusers' solver_type "heun"):
/// D̄ = D_i + ((e^{−h} − 1)/h + 1)/(1 − e^{−h}) · (D_i − D_{i−1})/r.
/// A grid that ends at a noisy level (diffusers' final_sigmas_type "sigma_min") gets a second-order last step unless
/// <see cref="LowerOrderFinal"/>.
/// </summary>
public sealed class DpmSolverPlusPlus2M : ISampler
{
    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("dpm++2m",
        "DPM-Solver++(2M), multistep 2nd order — Lu et al. 2022")
    {
        Aliases = ["dpmpp_2m", "DPM++ 2M", "sample_dpmpp_2m", "DPMSolverMultistepScheduler", "k_dpmpp_2m"],
        IsMultistep = true,
        Create = _ => new DpmSolverPlusPlus2M(),
    };

    SamplerInfo ISampler.Info => Info;

    /// <summary>Second-order term in the "heun" form instead of the midpoint form.</summary>
    public bool HeunForm { get; init; }

    /// <summary>First order on the last step also when it ends at a noisy level (to σ = 0 it always is).</summary>
    public bool LowerOrderFinal { get; init; }

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        float[] x = c.X, denoised = c.Buffer(0), previous = c.Buffer(1), blend = c.Buffer(2);
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
                double h = next.Lambda - now.Lambda;
                float[] d = denoised;
                if (i > 0 && !(LowerOrderFinal && i == c.Steps - 1))
                {
                    double r = lastH / h, k = HeunForm ? (double.ExpM1(-h) / h + 1) / -double.ExpM1(-h) : 0.5;
                    Vec.Axpby(blend, 1 + k / r, denoised, -k / r, previous);
                    d = blend;
                }
                Vec.Axpby(x, next.Sigma / now.Sigma, x, -double.ExpM1(-h), d);
                lastH = h;
            }
            (denoised, previous) = (previous, denoised);
            c.StepDone(i, x, SampleSpace.Sigma);
        }
    }
}
