using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Editing;

/// <summary>
/// The noise that brings inpainting's known images to each level of the grid.
/// </summary>
public enum KnownImageNoise
{
    /// <summary>A fresh draw at every step (Song et al. 2021's replacement; RePaint's).</summary>
    Fresh,
    /// <summary>
    /// The image's own initial noise x_T at every step, as diffusers' StableDiffusionInpaintPipeline blends the known
    /// latents for a 4-channel UNet: the known region follows one noise path down the grid.
    /// </summary>
    Initial,
}

/// <summary>
/// Inpainting by replacement (Song et al. 2021, App. I; the "replacement" baseline of Lugmayr et al. 2022): after every
/// step, pixels where the mask is 1 are overwritten with the known image noised to the current level,
/// √ᾱ x₀ + √(1−ᾱ) ε (x₀ + σε in σ-space), ε by <see cref="KnownImageNoise"/>, so the unknown pixels are sampled
/// consistently with them. At the grid's last level — the result, clean or not — the known pixels are copied exactly.
/// </summary>
public sealed class Inpainting : IStepConstraint
{
    private readonly float[] _known, _mask;
    private readonly int _imageSize;
    private readonly KnownImageNoise _noiseKind;
    private float[] _noise = [], _initial = [];
    private long _firstImage;

    /// <summary>
    /// Known images and masks, both [Count, C, H, W]; mask values must be exactly 0 (generate) or 1 (keep).
    /// </summary>
    public Inpainting(float[] known, float[] mask, int imageSize, KnownImageNoise noise = KnownImageNoise.Fresh)
    {
        if (known.Length != mask.Length)
            throw new DiffusionException($"The mask holds {mask.Length} values but the images hold {known.Length}; " +
                $"they must be the same size.");
        foreach (var m in mask)
            if (m != 0 && m != 1)
                throw new DiffusionException($"The mask must be binary (0 = generate, 1 = keep); found {m}.");
        (_known, _mask, _imageSize, _noiseKind) = (known, mask, imageSize, noise);
    }

    /// <summary>
    /// Points the constraint at images <paramref name="firstImage"/>… of the request (called per micro-batch), whose
    /// initial noise x_T is <paramref name="initialNoise"/> (kept for <see cref="KnownImageNoise.Initial"/>).
    /// </summary>
    public void Begin(long firstImage, ReadOnlySpan<float> initialNoise)
    {
        _firstImage = firstImage;
        if (_noiseKind != KnownImageNoise.Initial) return;
        if (_initial.Length != initialNoise.Length) _initial = new float[initialNoise.Length];
        initialNoise.CopyTo(_initial);
    }

    /// <inheritdoc />
    public void Apply(SamplingContext context, Span<float> x, NoiseLevel level, SampleSpace space)
    {
        int offset = (int)_firstImage * _imageSize;
        var known = _known.AsSpan(offset, x.Length);
        var mask = _mask.AsSpan(offset, x.Length);
        if (level.IsClean || level == context.Grid[^1])
        {
            for (int i = 0; i < x.Length; i++) if (mask[i] == 1) x[i] = known[i];
            return;
        }
        if (_noise.Length != x.Length) _noise = new float[x.Length];
        if (_noiseKind == KnownImageNoise.Fresh) context.DrawNoise(_noise);
        // the known image at this level, into the noise buffer
        ForwardProcess.Sample(_noise, known, _noiseKind == KnownImageNoise.Fresh ? _noise : _initial, level, space);
        for (int i = 0; i < x.Length; i++)
            if (mask[i] == 1) x[i] = _noise[i];
    }
}
