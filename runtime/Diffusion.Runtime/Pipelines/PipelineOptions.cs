using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Pipelines;

/// <summary>
/// ONNX Runtime settings per component of a pipeline: e.g. the text encoder (run once per request) on the CPU and the
/// UNet (run every step) on the GPU. A component left null takes <see cref="Session"/>.
/// </summary>
public sealed record PipelineOptions
{
    /// <summary>The settings of every component not given its own.</summary>
    public SessionSettings Session { get; init; } = new();
    /// <summary>The UNet's.</summary>
    public SessionSettings? Unet { get; init; }
    /// <summary>The text encoder's.</summary>
    public SessionSettings? TextEncoder { get; init; }
    /// <summary>The VAE encoder's and decoder's.</summary>
    public SessionSettings? Vae { get; init; }
}
