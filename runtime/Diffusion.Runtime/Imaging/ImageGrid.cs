namespace Diffusion.Runtime.Imaging;

/// <summary>Turns model-space images ([N,C,H,W], data in [−1, 1]) into 8-bit pictures and grids of them.</summary>
public static class ImageGrid
{
    /// <summary>One image [C,H,W] in [−1, 1] → 8-bit interleaved pixels (values outside are clamped).</summary>
    public static Image8 ToImage(ReadOnlySpan<float> chw, int channels, int height, int width)
    {
        var pixels = new byte[channels * height * width];
        int plane = height * width;
        for (int c = 0; c < channels; c++)
            for (int p = 0; p < plane; p++)
                pixels[p * channels + c] = ToByte(chw[c * plane + p]);
        return new Image8(width, height, channels, pixels);
    }

    /// <summary>An 8-bit image → [C,H,W] in [−1, 1].</summary>
    public static float[] FromImage(Image8 image)
    {
        int plane = image.Width * image.Height;
        var chw = new float[image.Channels * plane];
        for (int c = 0; c < image.Channels; c++)
            for (int p = 0; p < plane; p++)
                chw[c * plane + p] = Pixels.ToModel(image.Pixels[p * image.Channels + c]);
        return chw;
    }

    /// <summary>
    /// N images [N,C,H,W] tiled row-major into a grid of <paramref name="columns"/> columns with a
    /// <paramref name="padding"/>-pixel black gap.
    /// </summary>
    public static Image8 Tile(ReadOnlySpan<float> images, int count, int channels, int height, int width,
        int columns = 0, int padding = 2)
    {
        (int gridW, int gridH, columns, padding) = Layout(count, channels, height, width, columns, padding);
        var pixels = new byte[gridW * gridH * channels];
        int size = channels * height * width;
        for (int n = 0; n < count; n++)
        {
            var tile = ToImage(images.Slice(n * size, size), channels, height, width);
            int x0 = padding + (n % columns) * (width + padding), y0 = padding + (n / columns) * (height + padding);
            for (int y = 0; y < height; y++)
                tile.Pixels.AsSpan(y * width * channels, width * channels)
                    .CopyTo(pixels.AsSpan(((y0 + y) * gridW + x0) * channels));
        }
        return new Image8(gridW, gridH, channels, pixels);
    }

    /// <summary>
    /// Enlarges <paramref name="image"/> <paramref name="factor"/> times: nearest neighbour by default (crisp pixels
    /// for small models, and read back exactly), or a smooth <paramref name="filter"/>.
    /// </summary>
    public static Image8 Scale(Image8 image, int factor, ResampleFilter filter = ResampleFilter.Nearest)
    {
        if (factor < 1) throw new DiffusionArgumentException(nameof(factor), $"expected at least 1, got {factor}.");
        if (factor == 1) return image;
        long width = (long)image.Width * factor, height = (long)image.Height * factor;
        if (width * height * image.Channels > Array.MaxLength || width > int.MaxValue || height > int.MaxValue)
            throw new DiffusionArgumentException(nameof(factor),
                $"{factor}: a {image.Width}×{image.Height} image would become {width}×{height} " +
                    $"pixels, more than one image file holds.");
        if (filter != ResampleFilter.Nearest) return ImageFile.Resample(image, (int)width, (int)height, filter);
        int w = (int)width, c = image.Channels;
        var pixels = new byte[width * height * c];
        for (int y = 0; y < image.Height; y++)
        {
            var row = pixels.AsSpan((int)((long)y * factor * w * c), w * c);
            for (int x = 0; x < image.Width; x++)
                for (int k = 0; k < factor; k++)
                    image.Pixels.AsSpan((y * image.Width + x) * c, c).CopyTo(row[((x * factor + k) * c)..]);
            for (int k = 1; k < factor; k++) row.CopyTo(pixels.AsSpan((int)(((long)y * factor + k) * w * c), w * c));
        }
        return new Image8(w, (int)height, c, pixels) { Text = image.Text };
    }

    /// <summary>
    /// The grid's width and height, and the columns and padding it uses; throws if it would not fit one image.
    /// </summary>
    public static (int Width, int Height, int Columns, int Padding) Layout(int count, int channels, int height,
        int width, int columns = 0, int padding = 2)
    {
        if (count <= 0) throw new DiffusionArgumentException(nameof(count), $"a grid needs images, got {count}.");
        if (columns < 0)
            throw new DiffusionArgumentException(nameof(columns), $"expected ≥ 0 (0 = square), got {columns}.");
        if (padding < 0) throw new DiffusionArgumentException(nameof(padding), $"expected ≥ 0, got {padding}.");
        if (columns == 0) columns = (int)Math.Ceiling(Math.Sqrt(count));
        columns = Math.Min(columns, count);
        if (count == 1) padding = 0; // a single image is written as itself
        int rows = (count + columns - 1) / columns;
        long gridWidth = (long)columns * width + (columns + 1L) * padding, gridHeight = (long)rows * height
            + (rows + 1L) * padding;
        if (gridWidth > int.MaxValue || gridHeight > int.MaxValue
            || gridWidth * gridHeight * channels > Array.MaxLength)
            throw new DiffusionArgumentException(nameof(count),
                $"a grid of {count} images in {columns} columns would be "
                + $"{gridWidth}×{gridHeight} pixels, more than one image file holds; use fewer images or write a " +
                    $"folder.");
        return ((int)gridWidth, (int)gridHeight, columns, padding);
    }

    private static byte ToByte(float v) => Pixels.ToByte(v);
}
