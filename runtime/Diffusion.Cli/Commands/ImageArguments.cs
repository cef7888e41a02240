using System.CommandLine;
using Diffusion.CommandLine;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Cli.Commands;

/// <summary>
/// The options for image files: how an input is fitted to the model (--resize, --filter, --background) and how
/// outputs are enlarged and compressed (--scale-filter, --quality).
/// </summary>
public sealed class ImageArguments
{
    private static readonly ImageReadOptions Defaults = ImageReadOptions.Default;

    /// <summary>--resize.</summary>
    public ChoiceOption<FitMode> Resize { get; } = new("--resize",
        "How an input image of another size is fitted to the model: fill crops the centre, fit pads with "
        + "--background, stretch ignores the aspect ratio, none refuses it", Defaults.Resize);

    /// <summary>--filter.</summary>
    public ChoiceOption<ResampleFilter> Filter { get; } = new("--filter",
        "Resampling filter for input images (masks always use nearest)", Defaults.Filter);

    /// <summary>--background.</summary>
    public ChoiceOption<Background> Background { get; } = new("--background",
        "What transparent input pixels are composited on, and what --resize fit pads with", Defaults.Background);

    /// <summary>--scale-filter.</summary>
    public ChoiceOption<ResampleFilter> ScaleFilter { get; } = new("--scale-filter",
        "How --scale enlarges the outputs: nearest keeps crisp pixels, which read back exactly",
        ResampleFilter.Nearest);

    /// <summary>--quality.</summary>
    public Option<int> Quality { get; } = new("--quality")
    {
        Description = "JPEG/WebP output quality, 1…100 (WebP at 100 is lossless).",
        DefaultValueFactory = _ => ImageFile.DefaultQuality,
    };

    /// <summary>Adds the input options to <paramref name="command"/>.</summary>
    public void AddInputsTo(Command command)
    {
        command.Options.Add(Resize.Option);
        command.Options.Add(Filter.Option);
        command.Options.Add(Background.Option);
    }

    /// <summary>Adds the output options to <paramref name="command"/>.</summary>
    public void AddOutputsTo(Command command)
    {
        command.Options.Add(ScaleFilter.Option);
        command.Options.Add(Quality);
    }

    /// <summary>How an input image is read for images of <paramref name="shape"/> made by <paramref name="source"/>.</summary>
    public ImageReadOptions Input(ParseResult p, ImageShape shape, string source) =>
        ImageReadOptions.For(shape.Channels, shape.Width, shape.Height, $"model '{source}'") with
        {
            Resize = Resize.Value(p), Filter = Filter.Value(p), Background = Background.Value(p),
        };

    /// <summary>How an input image is read for <paramref name="model"/>.</summary>
    public ImageReadOptions Input(ParseResult p, DiffusionModel model) => Input(p, model.Shape, model.Source);

    /// <summary>How a mask is read: as an input, but always with nearest neighbour.</summary>
    public ImageReadOptions Mask(ParseResult p, ImageShape shape, string source) =>
        Input(p, shape, source) with { Filter = ResampleFilter.Nearest };

    /// <summary>The quality option's value, checked.</summary>
    public int QualityOf(ParseResult p) => p.GetValue(Quality) is var q and >= 1 and <= 100 ? q
        : throw new DiffusionArgumentException("--quality", $"must lie in 1…100, got {p.GetValue(Quality)}.");
}
