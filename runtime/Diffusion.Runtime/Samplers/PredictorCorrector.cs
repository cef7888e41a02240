using System.Numerics.Tensors;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Predictor–corrector sampling (Song et al. 2021, Alg. 2–3 and 5 for VP): at each level, Langevin corrector steps
/// x ← x + δ s + √(2δ) z with s = −ε̂/σ and δ = 2α (r‖z‖/‖s‖)² per image (r = snr), then the reverse-diffusion
/// predictor x ← (2 − √(1−β)) x + β s + √β z, β = 1 − ᾱ_t/ᾱ_t′. The last level ends with x̂₀.
/// </summary>
public sealed class PredictorCorrector : ISampler
{
    private static readonly SamplerOptions Defaults = new() { Snr = 0.16, CorrectorSteps = 1 };

    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("pc",
        "Predictor–corrector: reverse diffusion + Langevin (snr), 2 NFE/step — Song et al. 2021")
    {
        Aliases = ["predictor-corrector"],
        Knobs = SamplerKnobs.Snr,
        Defaults = Defaults,
        Create = o => new PredictorCorrector
        {
            Snr = o.Snr ?? Defaults.Snr!.Value, CorrectorSteps = o.CorrectorSteps ?? Defaults.CorrectorSteps!.Value,
        },
    };

    SamplerInfo ISampler.Info => Info;

    /// <summary>Langevin corrector signal-to-noise ratio r (Song et al. 2021, Alg. 5).</summary>
    public double Snr { get; init; } = Defaults.Snr!.Value;

    /// <summary>Langevin corrector steps per noise level.</summary>
    public int CorrectorSteps { get; init; } = Defaults.CorrectorSteps!.Value;

    /// <inheritdoc />
    public void Validate()
    {
        if (!(Snr > 0) || double.IsInfinity(Snr))
            throw new DiffusionArgumentException(nameof(Snr), $"expected a positive number, got {Snr}.");
        if (CorrectorSteps < 1)
            throw new DiffusionArgumentException(nameof(CorrectorSteps), $"expected at least 1, got {CorrectorSteps}.");
    }

    /// <inheritdoc />
    public int StepsForBudget(int evaluations) => Math.Max(1, evaluations / 2); // predictor + corrector

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        float[] x = c.X, eps = c.Buffer(0), x0 = c.Buffer(1), z = c.Buffer(2);
        double snr = Snr;
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            double alpha = now.AlphaBar / next.AlphaBar, beta = 1 - alpha;
            for (int k = 0; k < CorrectorSteps; k++)
            {
                c.Model.Predict(x, now, eps, x0);
                c.DrawNoise(z);
                for (int b = 0; b < c.BatchSize; b++)
                {
                    Span<float> xb = c.Image(x, b), eb = c.Image(eps, b), zb = c.Image(z, b);
                    // ‖s‖ = ‖ε̂‖/σ; the step along s = −ε̂/σ is −δ/σ along ε̂.
                    double scoreNorm = TensorPrimitives.Norm(eb) / now.SigmaVp, noiseNorm = TensorPrimitives.Norm(zb);
                    double step = scoreNorm > 0 ? 2 * alpha * Math.Pow(snr * noiseNorm / scoreNorm, 2) : 0;
                    Vec.AddScaled(xb, -step / now.SigmaVp, eb);
                    Vec.AddScaled(xb, Math.Sqrt(2 * step), zb);
                }
            }
            c.Model.Predict(x, now, eps, x0);
            if (next.IsClean)
            {
                x0.CopyTo(x);
            }
            else
            {
                Vec.Axpby(x, 2 - Math.Sqrt(alpha), x, -beta / now.SigmaVp, eps);
                c.DrawNoise(z);
                Vec.AddScaled(x, Math.Sqrt(beta), z);
            }
            c.StepDone(i, x, SampleSpace.Vp);
        }
    }
}
