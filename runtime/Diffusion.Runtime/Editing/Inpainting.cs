using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Editing;

/// <summary>
/// Inpainting by replacement (Song et al. 2021, App. I; the "replacement" baseline of Lugmayr et al. 2022): after every
/// step, pixels where the mask is 1 are overwritten with the known image noised to the current level,
/// √ᾱ x₀ + √(1−ᾱ) ε (x₀ + σε in σ-space), so the unknown pixels are sampled consistently with them. At the clean level
/// the known pixels are copied exactly.
/// </summary>
public sealed class Inpainting : IStepConstraint
{
    private readonly float[] _known, _mask;
    private readonly int _imageSize;
    private float[] _noise = [];
    private long _firstImage;

    /// <summary>
    /// Known images and masks, both [Count, C, H, W]; mask values must be exactly 0 (generate) or 1 (keep).
    /// </summary>
    public Inpainting(float[] known, float[] mask, int imageSize)
    {
        if (known.Length != mask.Length)
            throw new DiffusionException($"The mask holds {mask.Length} values but the images hold {known.Length}; " +
                $"they must be the same size.");
        foreach (var m in mask)
            if (m != 0 && m != 1)
                throw new DiffusionException($"The mask must be binary (0 = generate, 1 = keep); found {m}.");
        (_known, _mask, _imageSize) = (known, mask, imageSize);
    }

    /// <summary>
    /// Points the constraint at images <paramref name="firstImage"/>… of the request (called per micro-batch).
    /// </summary>
    public void Begin(long firstImage) => _firstImage = firstImage;

    /// <inheritdoc />
    public void Apply(SamplingContext context, Span<float> x, NoiseLevel level, SampleSpace space)
    {
        int offset = (int)_firstImage * _imageSize;
        var known = _known.AsSpan(offset, x.Length);
        var mask = _mask.AsSpan(offset, x.Length);
        if (level.IsClean)
        {
            for (int i = 0; i < x.Length; i++) if (mask[i] == 1) x[i] = known[i];
            return;
        }
        if (_noise.Length != x.Length) _noise = new float[x.Length];
        context.DrawNoise(_noise);
        // the known image at this level, into the noise buffer
        ForwardProcess.Sample(_noise, known, _noise, level, space);
        for (int i = 0; i < x.Length; i++)
            if (mask[i] == 1) x[i] = _noise[i];
    }
}
