using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using SixLabors.ImageSharp.Processing.Processors.Transforms;

namespace Diffusion.Runtime.Imaging;

/// <summary>
/// Image files in and out through SixLabors.ImageSharp 2.1: PNG (8 and 16 bit), JPEG, WebP, BMP, GIF (its first frame)
/// and TGA in; PNG, JPEG and WebP out. Every input is checked before its pixels are decoded — the file's size, then
/// the dimensions its header declares (<c>Image.Identify</c>) — and decoded within a memory budget; errors name the
/// file and the problem in one line (<see cref="DiffusionException"/>). Outputs are written atomically.
/// </summary>
public static partial class ImageFile
{
    /// <summary>The formats read, by name.</summary>
    public static IReadOnlyList<string> InputFormats { get; } = ["PNG", "JPEG", "WebP", "BMP", "GIF", "TGA"];

    /// <summary>The file extensions read (lower case, with the dot).</summary>
    public static IReadOnlyList<string> InputExtensions { get; } =
        [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tga"];

    /// <summary>The quality JPEG and WebP outputs get unless told otherwise.</summary>
    public const int DefaultQuality = 90;

    /// <summary>The key under which an image's generation parameters are stored (as other tools read them).</summary>
    public const string ParametersKey = "parameters";

    // Shared by every decode; at most 16 MiB stays pooled between them.
    private static readonly MemoryAllocator Pool =
        MemoryAllocator.Create(new MemoryAllocatorOptions { MaximumPoolSizeMegabytes = 16 });

    // Encoding and resampling images of our own: the same small pool, never ImageSharp's process-wide default (which
    // keeps far more memory pooled).
    private static readonly Configuration Output = Formats(Pool);

    private static Configuration Formats(MemoryAllocator allocator) => new(new PngConfigurationModule(),
        new JpegConfigurationModule(), new WebpConfigurationModule(), new BmpConfigurationModule(),
        new GifConfigurationModule(), new TgaConfigurationModule())
    {
        MemoryAllocator = allocator,
    };

    /// <summary>
    /// One decode's configuration: only the formats above, GIFs to their first frame, allocations within
    /// <paramref name="budget"/>.
    /// </summary>
    private static Configuration Configure(long budget, out BudgetAllocator allocator)
    {
        var configuration = Formats(allocator = new BudgetAllocator(Pool, budget));
        configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance,
            new GifDecoder { DecodingMode = FrameDecodingMode.First, MaxFrames = 1 });
        return configuration;
    }

    /// <summary>Whether <paramref name="path"/> has one of the <see cref="InputExtensions"/>.</summary>
    public static bool HasImageExtension(string path) =>
        InputExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>The most bytes the last decode on this thread held at once through ImageSharp's allocator.</summary>
    [ThreadStatic] internal static long LastDecoderPeak;

    /// <summary>
    /// Reads an image file as 8-bit pixels (16-bit samples rounded to 8), fitted as <paramref name="options"/> say.
    /// </summary>
    public static Image8 Read(string path, ImageReadOptions? options = null) =>
        Decode(ReadBytes(path, options ?? ImageReadOptions.Default), path, options);

    /// <summary>
    /// Reads an image file as a model input [C,H,W] in [−1, 1] at the options' channels and size (both required);
    /// 16-bit samples keep their full range.
    /// </summary>
    public static ImageTensor ReadTensor(string path, ImageReadOptions options) =>
        DecodeTensor(ReadBytes(path, options), path, options);

    /// <summary>Decodes image bytes as 8-bit pixels; <paramref name="source"/> names them in errors.</summary>
    public static Image8 Decode(byte[] data, string source, ImageReadOptions? options = null)
    {
        options ??= ImageReadOptions.Default;
        return Load(data, source, options, (image, channels, deep) =>
        {
            int w = image.Width, h = image.Height;
            var pixels = new byte[checked(w * h * channels)];
            Samples(image, channels, options.Background, deep,
                (i, c, v) => pixels[i * channels + c] = deep ? Pixels.ToByte((ushort)v) : (byte)v);
            return new Image8(w, h, channels, pixels) { Text = Text(image.Metadata) };
        });
    }

    /// <summary>Decodes image bytes as a model input (see <see cref="ReadTensor"/>).</summary>
    public static ImageTensor DecodeTensor(byte[] data, string source, ImageReadOptions options)
    {
        if (options.Channels is null || options.Width is null)
            throw new DiffusionArgumentException(nameof(options), "a model input needs its channels and size.");
        return Load(data, source, options, (image, channels, deep) =>
        {
            int plane = image.Width * image.Height;
            var values = new float[channels * plane];
            Samples(image, channels, options.Background, deep,
                (i, c, v) => values[c * plane + i] = deep ? Pixels.ToModel((ushort)v) : Pixels.ToModel((byte)v));
            return new ImageTensor(channels, image.Height, image.Width, values);
        });
    }

    private static byte[] ReadBytes(string path, ImageReadOptions options)
    {
        InputFile.CheckRegular(path, $"Image '{path}'");
        try
        {
            var length = new FileInfo(path).Length;
            if (length > options.Limits.MaxFileBytes)
                throw new DiffusionException($"'{path}' is {length:N0} bytes; image inputs are limited to " +
                    $"{options.Limits.MaxFileBytes:N0} bytes.");
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusionException($"Cannot read image '{path}': {e.Message}", e);
        }
    }

    /// <summary>A file's format and header, after its container is checked; its size upright.</summary>
    private sealed record Header(IImageFormat Format, IImageInfo Info, int Width, int Height)
    {
        public bool Gray => IsGray(Info, Format);
    }

    /// <summary>Detects the format, checks the container and reads the header: nothing is decoded yet.</summary>
    private static Header Inspect(byte[] data, string source, Configuration configuration)
    {
        var format = Image.DetectFormat(configuration, data)
            ?? throw new DiffusionException($"'{source}' is not an image in a format read here " +
                $"({string.Join(", ", InputFormats)}).");
        ImageContainer.Check(data, format, source);
        var info = Image.Identify(configuration, data, out _)
            ?? throw new DiffusionException($"'{source}' is damaged: its {format.Name} header cannot be read.");
        CheckExif(info.Metadata.ExifProfile, source);
        var (width, height) = Upright(info.Width, info.Height, info.Metadata);
        if (width < 1 || height < 1) throw new DiffusionException($"'{source}': invalid image size {width}×{height}.");
        return new Header(format, info, width, height);
    }

    /// <summary>
    /// An EXIF block must be readable where it says which way is up: ImageSharp skips one it cannot parse, which would
    /// hand the model a picture on its side. Other unreadable tags (maker notes and the like) are let be; an
    /// orientation of 0, which some cameras write, means "as stored".
    /// </summary>
    private static void CheckExif(ExifProfile? exif, string source)
    {
        if (exif is null) return;
        if (exif.Values.Count == 0)
            throw new DiffusionException($"'{source}' has a corrupt EXIF block (no entry in it can be read), so " +
                "which way is up is unknown.");
        if (exif.InvalidTags.Contains(ExifTag.Orientation))
            throw new DiffusionException($"'{source}' has a corrupt EXIF block: its orientation cannot be read.");
        if (exif.GetValue(ExifTag.Orientation)?.Value is > 8 and var o)
            throw new DiffusionException($"'{source}' has a corrupt EXIF block: orientation {o} is not one of 1…8.");
    }

    /// <summary>
    /// Runs <paramref name="work"/> (ImageSharp calls on <paramref name="source"/>) with <paramref name="budget"/>
    /// bytes for the allocator, turning every way the decoders fail into one <see cref="DiffusionException"/> line.
    /// </summary>
    private static T Guarded<T>(string source, long budget, Func<Configuration, T> work)
    {
        var configuration = Configure(budget, out var allocator);
        try
        {
            return work(configuration);
        }
        catch (DiffusionException)
        {
            throw;
        }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException or InvalidMemoryOperationException)
        {
            if (allocator.Exceeded || e.InnerException is InvalidMemoryOperationException
                || e is InvalidMemoryOperationException)
                throw new DiffusionException($"'{source}' needs more memory to decode than the " +
                    $"{budget >> 20} MiB allowed.", e);
            throw new DiffusionException($"'{source}' is damaged or not a supported image: {OneLine(e.Message)}", e);
        }
        catch (Exception e) when (IsDecoderFault(e))
        {
            throw new DiffusionException($"'{source}' is damaged: the decoder failed on it " +
                $"({e.GetType().Name}: {OneLine(e.Message)})", e);
        }
        finally
        {
            LastDecoderPeak = allocator.Peak;
        }
    }

    /// <summary>
    /// Checks, decodes, turns upright and fits the image, then hands it to <paramref name="extract"/> with the channels
    /// to produce and whether its samples are 16-bit.
    /// </summary>
    private static T Load<T>(byte[] data, string source, ImageReadOptions options,
        Func<Image, int, bool, T> extract)
    {
        options.Check();
        var limits = options.Limits;
        if (data.LongLength > limits.MaxFileBytes)
            throw new DiffusionException($"'{source}' is {data.LongLength:N0} bytes; image inputs are limited to " +
                $"{limits.MaxFileBytes:N0} bytes.");
        return Guarded(source, limits.MaxDecoderBytes, configuration =>
        {
            var header = Inspect(data, source, configuration);
            var (width, height) = (header.Width, header.Height);
            if ((long)width * height > limits.MaxPixels)
                throw new DiffusionException($"'{source}' is {width}×{height} = {(long)width * height:N0} pixels; " +
                    $"image inputs are limited to {limits.MaxPixels:N0} pixels.");
            if (options.Resize == FitMode.None && options.Width is int w0 && options.Height is int h0
                && (width, height) != (w0, h0))
                throw new DiffusionException($"'{source}' is {width}×{height}; {options.Expecting ?? "the reader"} " +
                    $"needs {w0}×{h0} images and resizing is off.");
            bool png = header.Format == PngFormat.Instance;
            if (png) ImageContainer.CheckPngData(data, source);
            bool deep = png && header.Info.Metadata.GetPngMetadata().BitDepth == PngBitDepth.Bit16;
            using Image image = deep ? Image.Load<Rgba64>(configuration, data)
                : Image.Load<Rgba32>(configuration, data);
            image.Mutate(x => x.AutoOrient());
            if (options.Width is int tw && options.Height is int th) Fit(image, tw, th, options);
            return extract(image, options.Channels ?? StoredChannels(image, deep, header.Gray), deep);
        });
    }

    /// <summary>
    /// The exceptions ImageSharp 2.1.13's decoders throw on some malformed files besides their format errors (the
    /// fuzzers meet them in the JPEG, WebP, BMP and TGA decoders): the file is refused all the same.
    /// </summary>
    internal static bool IsDecoderFault(Exception e) => e is NullReferenceException or IndexOutOfRangeException
        or ArgumentException or InvalidOperationException or DivideByZeroException or OverflowException
        or InvalidCastException;

    private static string OneLine(string message) =>
        Printable.Of(message.ReplaceLineEndings(" ").Trim().TrimEnd('.')) + ".";

    /// <summary>The size after EXIF orientation (5–8 turn the image a quarter).</summary>
    private static (int Width, int Height) Upright(int width, int height, ImageMetadata metadata)
    {
        var orientation = metadata.ExifProfile?.GetValue(ExifTag.Orientation)?.Value;
        return orientation is >= 5 and <= 8 ? (height, width) : (width, height);
    }

    /// <summary>Fits <paramref name="image"/> to <paramref name="width"/>×<paramref name="height"/>.</summary>
    private static void Fit(Image image, int width, int height, ImageReadOptions options)
    {
        if (image.Width == width && image.Height == height) return;
        int k = image.Width / width;
        bool block = k >= 2 && image.Width == k * width && image.Height == k * height;
        var resize = new ResizeOptions
        {
            Size = new Size(width, height),
            Sampler = block ? KnownResamplers.Box : Resampler(options.Filter),
            Mode = block ? ResizeMode.Stretch : options.Resize switch
            {
                FitMode.Fill => ResizeMode.Crop,
                FitMode.Fit => ResizeMode.Pad,
                _ => ResizeMode.Stretch,
            },
            PadColor = Color.Transparent,
        };
        image.Mutate(x => x.Resize(resize));
    }

    private static IResampler Resampler(ResampleFilter filter) => filter switch
    {
        ResampleFilter.Nearest => KnownResamplers.NearestNeighbor,
        ResampleFilter.Bicubic => KnownResamplers.Bicubic,
        _ => KnownResamplers.Lanczos3,
    };

    /// <summary>1 for a file that stores gray, else 4 if any pixel is transparent, else 3.</summary>
    private static int StoredChannels(Image image, bool deep, bool gray)
    {
        if (gray) return 1;
        int channels = 3, opaque = deep ? 65535 : 255;
        Visit(image, deep, (_, _, _, _, a) =>
        {
            if (a != opaque) channels = 4;
        });
        return channels;
    }

    /// <summary>Whether the file stores gray samples (a gray PNG, a one-component JPEG).</summary>
    private static bool IsGray(IImageInfo info, IImageFormat format) =>
        format == PngFormat.Instance
            ? info.Metadata.GetPngMetadata().ColorType is PngColorType.Grayscale or PngColorType.GrayscaleWithAlpha
            : format == JpegFormat.Instance && info.Metadata.GetJpegMetadata().ColorType == JpegColorType.Luminance;

    /// <summary>
    /// What a file holds, from its header alone (after the same checks as reading it, before any pixel is decoded).
    /// </summary>
    public static ImageFileInfo Identify(string path, ImageLimits? limits = null)
    {
        var options = ImageReadOptions.Default with { Limits = limits ?? ImageLimits.Default };
        var data = ReadBytes(path, options);
        return Guarded(path, options.Limits.MaxDecoderBytes, configuration =>
        {
            var header = Inspect(data, path, configuration);
            return new ImageFileInfo(header.Format.Name, header.Width, header.Height, header.Gray);
        });
    }

    /// <summary>
    /// Every pixel's samples for <paramref name="channels"/> channels, at the image's depth (0…255, or 0…65535 if
    /// <paramref name="deep"/>): alpha composited on the background unless kept, gray as rounded BT.709 luma.
    /// </summary>
    private static void Samples(Image image, int channels, Background background, bool deep,
        Action<int, int, int> put)
    {
        int max = deep ? 65535 : 255, bg = background == Background.White ? max : 0;
        Visit(image, deep, (i, r, g, b, a) =>
        {
            if (channels == 4)
            {
                put(i, 0, r); put(i, 1, g); put(i, 2, b); put(i, 3, a);
                return;
            }
            if (a != max)
            {
                r = Over(r, a, bg, max); g = Over(g, a, bg, max); b = Over(b, a, bg, max);
            }
            if (channels == 3)
            {
                put(i, 0, r); put(i, 1, g); put(i, 2, b);
            }
            else put(i, 0, r == g && g == b ? r : (int)Math.Round(0.2126 * r + 0.7152 * g + 0.0722 * b));
        });
    }

    /// <summary>c over the background with alpha a, rounded: (c·a + bg·(max − a)) / max.</summary>
    private static int Over(int c, int a, int bg, int max) =>
        (int)(((long)c * a + (long)bg * (max - a) + max / 2) / max);

    /// <summary>Calls <paramref name="pixel"/> with (index, r, g, b, a) for every pixel, row by row.</summary>
    private static void Visit(Image image, bool deep, Action<int, int, int, int, int> pixel)
    {
        if (deep)
            ((Image<Rgba64>)image).ProcessPixelRows(rows =>
            {
                for (int y = 0; y < rows.Height; y++)
                {
                    var row = rows.GetRowSpan(y);
                    for (int x = 0; x < row.Length; x++)
                        pixel(y * rows.Width + x, row[x].R, row[x].G, row[x].B, row[x].A);
                }
            });
        else
            ((Image<Rgba32>)image).ProcessPixelRows(rows =>
            {
                for (int y = 0; y < rows.Height; y++)
                {
                    var row = rows.GetRowSpan(y);
                    for (int x = 0; x < row.Length; x++)
                        pixel(y * rows.Width + x, row[x].R, row[x].G, row[x].B, row[x].A);
                }
            });
    }

    /// <summary>
    /// The text an image carries: PNG text chunks, or EXIF UserComment as "parameters" (at most 64 entries).
    /// </summary>
    private static Dictionary<string, string> Text(ImageMetadata metadata)
    {
        var text = new Dictionary<string, string>();
        foreach (var entry in metadata.GetPngMetadata().TextData.Take(64))
            if (entry.Keyword.Length is > 0 and < 80) text.TryAdd(entry.Keyword, entry.Value);
        if (metadata.ExifProfile?.GetValue(ExifTag.UserComment)?.Value is { } comment)
            text.TryAdd(ParametersKey, comment.Text);
        return text;
    }
}
