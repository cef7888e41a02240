using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Editing;

/// <summary>
/// DDIM inversion (Song et al. 2021, §4.3; Dhariwal &amp; Nichol 2021): the deterministic DDIM update run from the
/// clean image up the grid, x_t′ = √ᾱ_t′ x̂₀ + √(1−ᾱ_t′) ε̂ with ε̂ taken at the current point (at the clean start, at
/// the first noisy level). Decoding the result with DDIM (η = 0) on the same grid gives the image back, up to the
/// discretisation error, which shrinks as steps grow.
/// </summary>
public static class DdimInversion
{
    /// <summary>
    /// x_T (VP space, at <paramref name="grid"/>[0]) for each of <paramref name="count"/> images [C,H,W] in [−1, 1].
    /// </summary>
    public static float[] Invert(DiffusionModel model, float[] images, int count, NoiseLevel[] grid, int batchSize = 16,
        int[]? labels = null, float guidance = 1, CancellationToken cancellation = default)
    {
        int d = model.ImageSize;
        if (images.Length != (long)count * d)
            throw new DiffusionArgumentException(nameof(images), $"{images.Length} values, but {count} images of "
                + $"[{model.Channels},{model.Height},{model.Width}] need {(long)count * d}.");
        var latents = (float[])images.Clone();
        MicroBatches.Run(model, model.Shape, count, batchSize, ClassConditions.For(model, labels ?? [], guidance),
            denoiser =>
                (Denoiser: denoiser, Eps: new float[denoiser.BatchSize * d], X0: new float[denoiser.BatchSize * d]),
            (s, start, n) =>
            {
                var x = latents.AsSpan(start * d, n * d);
                for (int i = grid.Length - 2; i >= 0; i--)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var source = grid[i + 1];
                    var target = grid[i];
                    // ε̂ and x̂₀ exactly as the DDIM decoder will take them at this level (the clean start is its own
                    // x̂₀).
                    s.Denoiser.Predict(x, source.IsClean ? target : source, s.Eps, s.X0);
                    if (source.IsClean) x.CopyTo(s.X0);
                    Vec.Axpby(x, target.Alpha, s.X0, target.SigmaVp, s.Eps);
                }
            },
            cancellation);
        return latents;
    }

    /// <summary>
    /// Spherical interpolation between two latents: sin((1−a)θ)/sin θ · z₀ + sin(aθ)/sin θ · z₁ (linear when they are
    /// parallel).
    /// </summary>
    public static float[] Slerp(ReadOnlySpan<float> z0, ReadOnlySpan<float> z1, double a)
    {
        double dot = 0, n0 = 0, n1 = 0;
        for (int i = 0; i < z0.Length; i++)
            { dot += z0[i] * (double)z1[i]; n0 += z0[i] * (double)z0[i]; n1 += z1[i] * (double)z1[i]; }
        double cos = Math.Clamp(dot / Math.Sqrt(n0 * n1), -1, 1), theta = Math.Acos(cos);
        double w0 = 1 - a, w1 = a;
        if (theta > 1e-4)
            (w0, w1) = (Math.Sin((1 - a) * theta) / Math.Sin(theta), Math.Sin(a * theta) / Math.Sin(theta));
        var result = new float[z0.Length];
        Vec.Axpby(result, w0, z0, w1, z1);
        return result;
    }
}
