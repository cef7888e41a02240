using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Evaluation.Likelihood;

/// <summary>
/// The data a likelihood is measured on: <see cref="Count"/> images of <see cref="Shape"/>, [C,H,W] each, in the data
/// range [−1, 1]. <see cref="Discrete"/>: 8-bit images (each value one of the 256 levels k/127.5 − 1), whose
/// likelihood is a probability of bins (the bound's discretized decoder; the ODE's uniform dequantization); else
/// continuous values, whose likelihood is a density.
/// </summary>
public sealed record LikelihoodData(float[] Images, int Count, ImageShape Shape, bool Discrete, string Source)
{
    /// <summary>The values of image <paramref name="i"/>.</summary>
    public ReadOnlySpan<float> Image(int i) => Images.AsSpan(i * Shape.Size, Shape.Size);

    /// <summary>
    /// The first <paramref name="count"/> images (all if null) of <paramref name="spec"/>, for a model of
    /// <paramref name="shape"/>: <c>fashion-mnist-test</c> / <c>fashion-mnist</c> (Debian's dataset-fashion-mnist),
    /// an IDX images file, a folder of image files (8-bit; every image at the model's size, none resized), or a
    /// float32 .npy [N,C,H,W] in [−1, 1] (continuous). Anything else, or images of another size, is one
    /// <see cref="DiffusionException"/> naming the data.
    /// </summary>
    public static LikelihoodData Load(string spec, int? count, ImageShape shape)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (count is < 1)
            throw new DiffusionArgumentException("--count", $"expected a positive number of images, got {count}.");
        int wanted = count ?? int.MaxValue;
        if (Directory.Exists(spec)) return Folder(spec, wanted, shape);
        if (spec.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            var array = Npy.Load(spec);
            if (array.Shape.Length != 4 || array.Shape[0] < 1 || array.Shape[1] != shape.Channels
                || array.Shape[2] != shape.Height || array.Shape[3] != shape.Width)
                throw new DiffusionException("--data", $"'{spec}' has shape ({string.Join(",", array.Shape)}); " +
                    $"the model takes (N,{shape.Channels},{shape.Height},{shape.Width}).");
            int n = Math.Min(wanted, array.Shape[0]);
            var npy = array.Data[..(n * shape.Size)];
            for (int i = 0; i < npy.Length; i++)
                if (!(npy[i] >= -1 && npy[i] <= 1))
                    throw new DiffusionException("--data", $"'{spec}': value {npy[i]} (image {i / shape.Size}) lies " +
                        "outside the data range [−1, 1].");
            return new LikelihoodData(npy, n, shape, Discrete: false, spec);
        }
        var (images, m) = Evaluator.LoadReference(spec, wanted, shape.Size);
        if (shape.Channels != 1)
            throw new DiffusionException("--data", $"'{spec}' holds gray images; the model takes {shape.Channels} " +
                "channels.");
        return new LikelihoodData(images, m, shape, Discrete: true, spec);
    }

    private static LikelihoodData Folder(string folder, int wanted, ImageShape shape)
    {
        var files = Directory.EnumerateFiles(folder).Where(ImageFile.HasImageExtension)
            .Order(StringComparer.Ordinal).Take(wanted).ToArray();
        if (files.Length == 0)
            throw new DiffusionException("--data", $"folder '{folder}' holds no image files " +
                $"({string.Join(", ", ImageFile.InputExtensions)}).");
        var images = new float[checked(files.Length * shape.Size)];
        int plane = shape.Height * shape.Width;
        for (int k = 0; k < files.Length; k++)
        {
            var image = ImageFile.Read(files[k], ImageReadOptions.Default with { Channels = shape.Channels });
            if (image.Width != shape.Width || image.Height != shape.Height)
                throw new DiffusionException("--data", $"'{files[k]}' is {image.Width}×{image.Height}; the model " +
                    $"takes {shape.Width}×{shape.Height} images (a likelihood is of the data as it is: none is " +
                        "resized).");
            var values = images.AsSpan(k * shape.Size, shape.Size);
            for (int i = 0; i < plane; i++)
                for (int c = 0; c < shape.Channels; c++)
                    values[c * plane + i] = Pixels.ToModel(image.Pixels[i * shape.Channels + c]);
        }
        return new LikelihoodData(images, files.Length, shape, Discrete: true, folder);
    }
}
