using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace Diffusion.Tests;

/// <summary>
/// Small images in every input format, encoded by ImageSharp's own encoders (an independent writer for the reader's
/// tests, and the fuzzers' seeds).
/// </summary>
public static class ImageFixtures
{
    /// <summary>A W×H RGBA test pattern: smooth gradients and a few hard edges, opaque unless asked.</summary>
    public static Image<Rgba32> Pattern(int width, int height, bool alpha = false)
    {
        var image = new Image<Rgba32>(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                image[x, y] = new Rgba32((byte)(x * 255 / Math.Max(1, width - 1)),
                    (byte)(y * 255 / Math.Max(1, height - 1)), (byte)((x + y) % 3 == 0 ? 255 : 40),
                    alpha ? (byte)((x * 37 + y * 11) % 256) : (byte)255);
        return image;
    }

    /// <summary>The encoders, by name: the lossless ones first.</summary>
    public static IReadOnlyList<(string Name, string Extension, IImageEncoder Encoder, bool Lossless)> Encoders { get; }
        =
        [
            ("png", ".png", new PngEncoder(), true),
            ("png-gray", ".png", new PngEncoder { ColorType = PngColorType.Grayscale }, false),
            ("png-palette", ".png", new PngEncoder { ColorType = PngColorType.Palette }, false),
            ("png-interlaced", ".png", new PngEncoder { InterlaceMethod = PngInterlaceMode.Adam7 }, true),
            ("png-16", ".png", new PngEncoder { BitDepth = PngBitDepth.Bit16, ColorType = PngColorType.RgbWithAlpha },
                true),
            ("bmp", ".bmp", new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 }, true),
            ("tga", ".tga", new TgaEncoder { BitsPerPixel = TgaBitsPerPixel.Pixel24 }, true),
            ("tga-rle", ".tga", new TgaEncoder { Compression = TgaCompression.RunLength }, true),
            ("webp-lossless", ".webp", new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }, true),
            ("gif", ".gif", new GifEncoder(), false),
            ("jpeg", ".jpg", new JpegEncoder { Quality = 95 }, false),
            ("jpeg-gray", ".jpg", new JpegEncoder { ColorType = JpegColorType.Luminance }, false),
            ("webp", ".webp", new WebpEncoder { FileFormat = WebpFileFormatType.Lossy, Quality = 90 }, false),
        ];

    /// <summary><paramref name="image"/> encoded by <paramref name="encoder"/>.</summary>
    public static byte[] Encode(Image image, IImageEncoder encoder)
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    /// <summary>The pattern at <paramref name="width"/>×<paramref name="height"/> in every format.</summary>
    public static IEnumerable<(string Name, byte[] Data)> EveryFormat(int width, int height)
    {
        using var pattern = Pattern(width, height);
        foreach (var (name, _, encoder, _) in Encoders) yield return (name, Encode(pattern, encoder));
    }
}
