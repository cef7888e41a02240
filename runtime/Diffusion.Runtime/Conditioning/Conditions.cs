namespace Diffusion.Runtime.Conditioning;

/// <summary>
/// The conditioning of a generation: what each image is conditioned on, and for classifier-free guidance what it is
/// contrasted with and the weight w, ε̂ = ε̂_∅ + w(ε̂_c − ε̂_∅) — the null label, or the negative / empty prompt's
/// embedding. Guided calls run both halves in one network batch.
/// </summary>
public sealed record Conditions
{
    /// <summary>What each image is conditioned on.</summary>
    public Condition Conditional { get; init; } = Condition.None;

    /// <summary>The unconditional side of guidance; needed when <see cref="Guidance"/> ≠ 1.</summary>
    public Condition? Unconditional { get; init; }

    /// <summary>
    /// Channels the network reads after x's in its sample input (<see cref="Onnx.DiffusionModel.ConcatChannels"/>),
    /// entries [E, H, W] — one per image, or one for all —, the same on both sides of guidance: diffusers' inpainting
    /// UNet's mask and masked-image latents. Required by such a model, refused by any other.
    /// </summary>
    public ConditioningTensor? Concatenated { get; init; }

    /// <summary>Classifier-free guidance weight w (1 = none).</summary>
    public float Guidance { get; init; } = 1;

    /// <summary>Whether network calls are guided (two conditionings per image).</summary>
    public bool Guided => Guidance != 1;

    /// <summary>An unconditional generation.</summary>
    public static Conditions None { get; } = new();
}
