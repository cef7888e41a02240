using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Diffusion.Runtime.Imaging;

/// <summary>The formats images are written in, chosen by the file's extension.</summary>
public enum ImageFormat
{
    /// <summary>.png: lossless, with the text entries as PNG text chunks.</summary>
    Png,

    /// <summary>.jpg / .jpeg: lossy, no alpha; "parameters" as EXIF UserComment.</summary>
    Jpeg,

    /// <summary>.webp: lossy (lossless at quality 100); "parameters" as EXIF UserComment.</summary>
    Webp,
}

// Image files out: PNG, JPEG or WebP by extension, with their text; resampling of images of our own.
public static partial class ImageFile
{
    /// <summary>The output format for <paramref name="path"/>'s extension; null if it names none.</summary>
    public static ImageFormat? FormatOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".png" => ImageFormat.Png,
        ".jpg" or ".jpeg" => ImageFormat.Jpeg,
        ".webp" => ImageFormat.Webp,
        _ => null,
    };

    /// <summary>
    /// Writes <paramref name="image"/> to <paramref name="path"/> atomically, in the format its extension names.
    /// </summary>
    public static void Save(string path, Image8 image, int quality = DefaultQuality)
    {
        var format = FormatOf(path) ?? throw new DiffusionArgumentException(nameof(path),
            $"'{path}': expected a .png, .jpg, .jpeg or .webp file name.");
        AtomicFile.Write(path, s => Write(s, image, format, quality));
    }

    /// <summary>
    /// Encodes <paramref name="image"/>: PNG (8-bit gray, RGB or RGBA, its text as text chunks), JPEG (gray or RGB;
    /// alpha composited on black) or WebP at <paramref name="quality"/> (1…100).
    /// </summary>
    public static void Write(Stream stream, Image8 image, ImageFormat format = ImageFormat.Png,
        int quality = DefaultQuality)
    {
        if (quality is < 1 or > 100)
            throw new DiffusionArgumentException(nameof(quality), $"expected 1…100, got {quality}.");
        if (image.Channels is not (1 or 3 or 4))
            throw new DiffusionArgumentException(nameof(image),
                $"images hold 1, 3 or 4 channels, not {image.Channels}.");
        if (image.Pixels.Length != (long)image.Width * image.Height * image.Channels)
            throw new DiffusionArgumentException(nameof(image), "the pixel buffer does not match the image size.");
        using var picture = ToImageSharp(image);
        switch (format)
        {
            case ImageFormat.Png:
                var png = picture.Metadata.GetPngMetadata();
                foreach (var (keyword, value) in image.Text) png.TextData.Add(new PngTextData(keyword, value, "", ""));
                picture.Save(stream, new PngEncoder
                {
                    BitDepth = PngBitDepth.Bit8,
                    ColorType = image.Channels switch
                    {
                        1 => PngColorType.Grayscale, 3 => PngColorType.Rgb, _ => PngColorType.RgbWithAlpha,
                    },
                    // plain tEXt (iTXt where the text is not Latin-1), never compressed: what other tools read
                    TextCompressionThreshold = int.MaxValue,
                });
                break;
            case ImageFormat.Jpeg:
                SetComment(picture, image);
                picture.Save(stream, new JpegEncoder
                {
                    Quality = quality,
                    ColorType = image.Channels == 1 ? JpegColorType.Luminance : JpegColorType.YCbCrRatio420,
                });
                break;
            default:
                SetComment(picture, image);
                picture.Save(stream, new WebpEncoder
                {
                    Quality = quality,
                    FileFormat = quality == 100 ? WebpFileFormatType.Lossless : WebpFileFormatType.Lossy,
                    TransparentColorMode = WebpTransparentColorMode.Preserve,
                });
                break;
        }
    }

    private static void SetComment(Image picture, Image8 image)
    {
        if (!image.Text.TryGetValue(ParametersKey, out var parameters)) return;
        picture.Metadata.ExifProfile ??= new ExifProfile();
        picture.Metadata.ExifProfile.SetValue(ExifTag.UserComment,
            new EncodedString(EncodedString.CharacterCode.Unicode, parameters));
    }

    private static Image ToImageSharp(Image8 image) => image.Channels switch
    {
        1 => Image.LoadPixelData<L8>(Output, image.Pixels, image.Width, image.Height),
        3 => Image.LoadPixelData<Rgb24>(Output, image.Pixels, image.Width, image.Height),
        _ => Image.LoadPixelData<Rgba32>(Output, image.Pixels, image.Width, image.Height),
    };

    /// <summary>
    /// Resamples <paramref name="image"/> to <paramref name="width"/>×<paramref name="height"/> with
    /// <paramref name="filter"/> (stretching; its text kept).
    /// </summary>
    public static Image8 Resample(Image8 image, int width, int height, ResampleFilter filter)
    {
        using var picture = ToImageSharp(image);
        picture.Mutate(x => x.Resize(new ResizeOptions
        {
            Size = new Size(width, height), Sampler = Resampler(filter), Mode = ResizeMode.Stretch,
        }));
        var pixels = new byte[checked(width * height * image.Channels)];
        switch (picture)
        {
            case Image<L8> gray: gray.CopyPixelDataTo(pixels); break;
            case Image<Rgb24> rgb: rgb.CopyPixelDataTo(pixels); break;
            case Image<Rgba32> rgba: rgba.CopyPixelDataTo(pixels); break;
        }
        return new Image8(width, height, image.Channels, pixels) { Text = image.Text };
    }
}
