using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// RePaint's resampling move (Lugmayr et al. 2022, Alg. 1): take x back from level t′ to t with the forward process
/// q(x_t | x_t′).
/// </summary>
public static class Resampling
{
    /// <summary>x_t = √(ᾱ_t/ᾱ_t′) x_t′ + √(1 − ᾱ_t/ᾱ_t′) z (VP space), with z a fresh keyed draw.</summary>
    public static void Renoise(SamplingContext c, float[] x, NoiseLevel now, NoiseLevel next, float[] scratch)
    {
        c.DrawNoise(scratch);
        ForwardProcess.Renoise(x, scratch, next, now);
    }
}
