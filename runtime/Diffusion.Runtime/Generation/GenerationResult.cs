namespace Diffusion.Runtime.Generation;

/// <summary>Generated images [Count, C, H, W] in the data range (about [−1, 1]) and what it cost.</summary>
public sealed record GenerationResult(float[] Images, int Count, int Channels, int Height, int Width)
{
    /// <summary>The sampler that made them, by name (the one resolved for the request).</summary>
    public string Sampler { get; init; } = "";
    /// <summary>Network evaluations per image (a guided evaluation counts once).</summary>
    public double EvaluationsPerImage { get; init; }
    /// <summary>Total network calls over all micro-batches.</summary>
    public long NetworkCalls { get; init; }
    /// <summary>Time spent inside ONNX Runtime.</summary>
    public TimeSpan ModelTime { get; init; }
    /// <summary>Wall time of the whole generation.</summary>
    public TimeSpan TotalTime { get; init; }
    /// <summary>
    /// A latent pipeline's final latents [Count, C, h, w] (UNet space, before the VAE decoder); null for a pixel model.
    /// </summary>
    public float[]? Latents { get; init; }
    /// <summary>What the caller should know but that did not stop the generation (a prompt truncated, say).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
    /// <summary>Time spent in the text encoder (a text-to-image pipeline; zero otherwise).</summary>
    public TimeSpan TextEncoderTime { get; init; }
    /// <summary>Time spent in the VAE's encoder and decoder (a latent pipeline; zero otherwise).</summary>
    public TimeSpan VaeTime { get; init; }

    /// <summary>Values per image.</summary>
    public int ImageSize => Channels * Height * Width;

    /// <summary>Image <paramref name="i"/>.</summary>
    public ReadOnlySpan<float> Image(int i) => Images.AsSpan(i * ImageSize, ImageSize);
}

/// <summary>
/// Progress of a generation: images finished, of how many, the current batch's step, and that batch's size.
/// </summary>
public readonly record struct GenerationProgress(int ImagesDone, int ImagesTotal, int Step, int Steps,
    int BatchImages = 0)
{
    /// <summary>The share of the whole generation done, in [0, 1].</summary>
    public double Fraction =>
        (ImagesDone
            + (double)Step / Math.Max(1, Steps) * Math.Max(0,
                Math.Min(ImagesTotal - ImagesDone, BatchImages))) / Math.Max(1, ImagesTotal);
}
