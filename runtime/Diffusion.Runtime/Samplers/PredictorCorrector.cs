using System.Numerics.Tensors;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Predictor–corrector sampling (Song et al. 2021, Alg. 2–3 and 5 for VP): at each level, Langevin corrector steps
/// x ← x + δ s + √(2δ) z with s = −ε̂/σ and δ = 2α (r‖z‖/‖s‖)² per image (r = snr), then the reverse-diffusion
/// predictor x ← (2 − √(1−β)) x + β s + √β z, β = 1 − ᾱ_t/ᾱ_t′. The last level ends with x̂₀.
/// </summary>
public sealed class PredictorCorrector : ISampler
{
    /// <summary>Langevin corrector signal-to-noise ratio r (Song et al. 2021, Alg. 5).</summary>
    public double Snr { get; init; } = 0.16;

    /// <summary>Langevin corrector steps per noise level.</summary>
    public int CorrectorSteps { get; init; } = 1;

    /// <inheritdoc />
    public ISampler With(SamplerOptions overrides) => new PredictorCorrector { Snr = overrides.Snr ?? Snr, CorrectorSteps = overrides.CorrectorSteps ?? CorrectorSteps };

    /// <inheritdoc />
    public void Validate()
    {
        if (!(Snr > 0) || double.IsInfinity(Snr)) throw new DiffusionArgumentException($"Snr must be a positive number, got {Snr}.");
        if (CorrectorSteps < 1) throw new DiffusionArgumentException($"CorrectorSteps must be at least 1, got {CorrectorSteps}.");
    }

    /// <inheritdoc />
    public int StepsForBudget(int evaluations) => Math.Max(1, evaluations / 2); // predictor + corrector

    /// <inheritdoc />
    public SamplerKnobs Knobs => SamplerKnobs.Snr;

    /// <inheritdoc />
    public string Name => "pc";

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
