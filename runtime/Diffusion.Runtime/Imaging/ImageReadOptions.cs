namespace Diffusion.Runtime.Imaging;

/// <summary>How an image is fitted to a size it does not have.</summary>
public enum FitMode
{
    /// <summary>Scaled to cover the size, the overhang cropped equally on both sides (the default).</summary>
    Fill,

    /// <summary>Scaled to lie inside the size, the rest padded with the background.</summary>
    Fit,

    /// <summary>Scaled to the size, aspect ratio not kept.</summary>
    Stretch,

    /// <summary>Not resized: an image of another size is refused.</summary>
    None,
}

/// <summary>The filter that resamples an image to another size.</summary>
public enum ResampleFilter
{
    /// <summary>Lanczos, a = 3: sharp, the default for photographs.</summary>
    Lanczos3,

    /// <summary>Bicubic (Keys, a = −0.5): a little softer than Lanczos3.</summary>
    Bicubic,

    /// <summary>Nearest neighbour: for masks and pixel art (crisp enlarged pixels).</summary>
    Nearest,
}

/// <summary>The colour transparent pixels are composited on, and that <see cref="FitMode.Fit"/> pads with.</summary>
public enum Background
{
    /// <summary>Black (the models' −1), the default.</summary>
    Black,

    /// <summary>White (+1).</summary>
    White,
}

/// <summary>
/// How an image file is read: its limits, the channels and size wanted, and how it is fitted to that size. Every input
/// is first turned upright by its EXIF orientation; gray is BT.709 luma of the RGB; a whole-number reduction of the
/// same aspect (an output written k× enlarged) averages k×k blocks, which gives an enlarged output back exactly.
/// </summary>
public sealed record ImageReadOptions
{
    /// <summary>As stored: its own size and channels, the default limits.</summary>
    public static ImageReadOptions Default { get; } = new();

    /// <summary>What an input may be.</summary>
    public ImageLimits Limits { get; init; } = ImageLimits.Default;

    /// <summary>
    /// 1 (gray), 3 (RGB) or 4 (RGBA); null for what the file stores: 1 for a gray PNG or JPEG (transparency
    /// composited), else 4 if any pixel is transparent, else 3.
    /// </summary>
    public int? Channels { get; init; }

    /// <summary>The width wanted; null keeps the image's (then <see cref="Height"/> must be null too).</summary>
    public int? Width { get; init; }

    /// <summary>The height wanted; null keeps the image's.</summary>
    public int? Height { get; init; }

    /// <summary>How an image of another size is fitted to <see cref="Width"/>×<see cref="Height"/>.</summary>
    public FitMode Resize { get; init; } = FitMode.Fill;

    /// <summary>The resampling filter.</summary>
    public ResampleFilter Filter { get; init; } = ResampleFilter.Lanczos3;

    /// <summary>
    /// What transparency is composited on (for 1 or 3 channels) and what <see cref="FitMode.Fit"/> pads.
    /// </summary>
    public Background Background { get; init; } = Background.Black;

    /// <summary>Who wants that size (for the message when it is refused), e.g. "model 'm.onnx'".</summary>
    public string? Expecting { get; init; }

    /// <summary>
    /// Options for <paramref name="channels"/> channels at <paramref name="width"/>×<paramref name="height"/>.
    /// </summary>
    public static ImageReadOptions For(int channels, int width, int height, string expecting) => new()
    {
        Channels = channels, Width = width, Height = height, Expecting = expecting,
    };

    internal void Check()
    {
        if (Channels is int c && c is not (1 or 3 or 4))
            throw new DiffusionArgumentException(nameof(Channels), $"expected 1, 3 or 4, got {c}.");
        if (Width.HasValue != Height.HasValue)
            throw new DiffusionArgumentException(nameof(Width), "give both a width and a height, or neither.");
        if (Width is < 1 or > 65536 || Height is < 1 or > 65536)
            throw new DiffusionArgumentException(nameof(Width), $"expected 1…65536, got {Width}×{Height}.");
    }
}
