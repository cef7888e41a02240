using static TorchSharp.torch;

namespace Diffusion.Trainer.Data;

/// <summary>
/// Images held in memory as bytes [N,C,H,W] (0…255) with optional class labels; batches come out scaled to [−1, 1].
/// </summary>
public sealed class ImageDataset
{
    /// <summary>Pixels, image after image, each [C,H,W].</summary>
    public byte[] Pixels { get; }
    /// <summary>Class label per image, or null for unlabelled data.</summary>
    public int[]? Labels { get; }
    /// <summary>Number of images.</summary>
    public int Count { get; }
    /// <summary>Channels.</summary>
    public int Channels { get; }
    /// <summary>Height.</summary>
    public int Height { get; }
    /// <summary>Width.</summary>
    public int Width { get; }
    /// <summary>Class names, index = label (empty if unlabelled).</summary>
    public string[] ClassNames { get; }
    /// <summary>Where the data came from.</summary>
    public string Source { get; }
    /// <summary>
    /// What was read, for the log (an image folder says how many images per class, and what it skipped).
    /// </summary>
    public string Summary { get; init; } = "";

    /// <summary>Wraps loaded data, checking that the sizes agree.</summary>
    public ImageDataset(byte[] pixels, int[]? labels, int count, int channels, int height, int width,
        string[] classNames, string source)
    {
        if ((long)count * channels * height * width != pixels.Length)
            throw new DiffusionException($"{source}: {pixels.Length} pixel bytes do not hold {count} images " +
                $"of {channels}×{height}×{width}.");
        if (labels is not null && labels.Length != count)
            throw new DiffusionException($"{source}: {labels.Length} labels for {count} images.");
        (Pixels, Labels, Count, Channels, Height, Width, ClassNames, Source) = (pixels, labels, count, channels, height,
            width, classNames, source);
    }

    /// <summary>Values per image.</summary>
    public int ImageSize => Channels * Height * Width;

    /// <summary>Number of classes (0 if unlabelled).</summary>
    public int NumClasses => Labels is null ? 0 : ClassNames.Length;

    /// <summary>
    /// A training batch: images <paramref name="indices"/> scaled to [−1, 1], mirrored left–right where
    /// <paramref name="flip"/> says so, as a float tensor [B,C,H,W], with their labels as int64 [B] (or null).
    /// </summary>
    public (Tensor Images, Tensor? Labels) Batch(ReadOnlySpan<long> indices, ReadOnlySpan<bool> flip)
    {
        int b = indices.Length, size = ImageSize;
        var data = new float[b * size];
        for (int i = 0; i < b; i++)
        {
            var source = Pixels.AsSpan((int)indices[i] * size, size);
            var target = data.AsSpan(i * size, size);
            for (int row = 0; row < Channels * Height; row++)
                for (int x = 0; x < Width; x++)
                    target[row * Width
                        + x] = Diffusion.Runtime.Imaging.Pixels.ToModel(source[row * Width
                            + (flip.Length > 0 && flip[i] ? Width - 1 - x : x)]);
        }
        var images = tensor(data, [b, Channels, Height, Width]);
        if (Labels is null) return (images, null);
        var labels = new long[b];
        for (int i = 0; i < b; i++) labels[i] = Labels[indices[i]];
        return (images, tensor(labels, [b]));
    }

    /// <summary>The first <paramref name="count"/> images (a small slice for quick runs and tests).</summary>
    public ImageDataset Take(int count)
    {
        count = Math.Min(count, Count);
        return new ImageDataset(Pixels[..(count * ImageSize)], Labels?[..count], count, Channels, Height, Width,
            ClassNames, $"{Source} (first {count})")
        {
            Summary = Summary.Length > 0 ? $"{Summary}; the first {count} used" : "",
        };
    }
}
