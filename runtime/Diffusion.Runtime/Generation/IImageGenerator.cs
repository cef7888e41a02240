using Diffusion.Runtime.Samplers;

namespace Diffusion.Runtime.Generation;

/// <summary>
/// What generates images from a <see cref="GenerationRequest"/>: a pixel model's <see cref="ImageGenerator"/>, or a
/// pipeline (<see cref="Pipelines.TextToImagePipeline"/>). Implementations are safe for concurrent calls.
/// </summary>
public interface IImageGenerator
{
    /// <summary>
    /// Refuses <paramref name="request"/> as <see cref="Generate"/> would, without running anything; returns the
    /// sampler it resolves to.
    /// </summary>
    ISampler Check(GenerationRequest request);

    /// <summary>Runs <paramref name="request"/> on the calling thread.</summary>
    GenerationResult Generate(GenerationRequest request, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellation = default);

    /// <summary>Runs <paramref name="request"/> on the thread pool.</summary>
    Task<GenerationResult> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellation = default);

    /// <summary>The shape [C, H, W] of the images <paramref name="request"/> makes (its Width and Height, else the model's).</summary>
    Onnx.ImageShape ImageShapeOf(GenerationRequest request);
}
