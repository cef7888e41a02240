namespace Diffusion.Runtime.Imaging;

/// <summary>
/// What an image input may be, checked before any pixel is decoded: the file's size, the width × height its header
/// declares, and the memory the decoder may take.
/// </summary>
public sealed record ImageLimits
{
    /// <summary>
    /// 64 MiB files, 16 MP (a 4096² image) and 512 MiB of decoder memory: larger than any input a model here takes,
    /// small enough to decode in bounded memory.
    /// </summary>
    public static ImageLimits Default { get; } = new();

    /// <summary>Largest file.</summary>
    public long MaxFileBytes { get; init; } = 64L << 20;

    /// <summary>Largest width × height (as the header declares it, before any pixel is decoded).</summary>
    public long MaxPixels { get; init; } = 1 << 24;

    /// <summary>
    /// Largest amount of memory the decoder and the resampler may hold at once through ImageSharp's allocator (pixel
    /// buffers and the decoders' working buffers); beyond it decoding stops with an error.
    /// </summary>
    public long MaxDecoderBytes { get; init; } = 512L << 20;
}
