using Diffusion.Runtime.Imaging;

namespace Diffusion.Trainer.Data;

/// <summary>
/// IDX files (MNIST / Fashion-MNIST) as a training data set; the format itself is read by the runtime's
/// <see cref="Idx"/>.
/// </summary>
public static class IdxDataset
{
    /// <summary>An images file [N,H,W] and, if given, its labels file [N].</summary>
    public static ImageDataset Load(string imagesPath, string? labelsPath, string[] classNames)
    {
        var (pixels, labels, count, height, width) = Idx.ReadImages(imagesPath, labelsPath);
        if (labels is not null)
        {
            int max = labels.Max();
            if (classNames.Length == 0) classNames = Enumerable.Range(0, max + 1).Select(i => i.ToString()).ToArray();
            if (max >= classNames.Length)
                throw new DiffusionException($"IDX file '{labelsPath}': label {max} but only " +
                    $"{classNames.Length} class names.");
        }
        return new ImageDataset(pixels, labels, count, 1, height, width, labels is null ? [] : classNames, imagesPath);
    }
}
