using Diffusion.Runtime.Samplers;

namespace Diffusion.Runtime.Schedules;

/// <summary>
/// The forward (noising) process, in one place: q(x_t | x₀) for img2img, inpainting and training targets, and
/// q(x_t | x_t′) for RePaint's re-noising (Ho et al. 2020, eq. 4; Lugmayr et al. 2022).
/// </summary>
public static class ForwardProcess
{
    /// <summary>
    /// The coefficients of q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I) at training timestep <paramref name="t"/>: (√ᾱ_t, √(1
    /// − ᾱ_t)).
    /// </summary>
    public static (double Alpha, double Sigma) Coefficients(NoiseSchedule schedule, int t) =>
        (Math.Sqrt(schedule.AlphasCumprod[t]), Math.Sqrt(1 - schedule.AlphasCumprod[t]));

    /// <summary>
    /// x_t = √ᾱ x₀ + √(1 − ᾱ) ε at <paramref name="level"/> (VP space), or x₀ + σ ε in σ space; <paramref name="xt"/>
    /// may be <paramref name="eps"/>.
    /// </summary>
    public static void Sample(Span<float> xt, ReadOnlySpan<float> x0, ReadOnlySpan<float> eps, NoiseLevel level,
        SampleSpace space = SampleSpace.Vp)
    {
        if (space == SampleSpace.Vp) Vec.Axpby(xt, level.SigmaVp, eps, level.Alpha, x0);
        else Vec.Axpby(xt, level.Sigma, eps, 1, x0);
    }

    /// <summary>
    /// q(x_t | x_t′) from the less noisy <paramref name="from"/> to <paramref name="to"/>: x ← √(ᾱ_t/ᾱ_t′) x + √(1 −
    /// ᾱ_t/ᾱ_t′) ε (VP space).
    /// </summary>
    public static void Renoise(Span<float> x, ReadOnlySpan<float> eps, NoiseLevel from, NoiseLevel to)
    {
        double ratio = to.AlphaBar / from.AlphaBar;
        Vec.Axpby(x, Math.Sqrt(ratio), x, Math.Sqrt(1 - ratio), eps);
    }
}
