using Diffusion.Runtime.Imaging;

namespace Diffusion.Trainer.Data;

/// <summary>
/// Opens a data set by name or path: fashion-mnist[-test], an IDX file, a CIFAR-10 binary folder/file, or a folder of
/// PNGs.
/// </summary>
public static class Datasets
{
    /// <summary>Where Debian's dataset-fashion-mnist package puts the files.</summary>
    public const string FashionMnistFolder = "/usr/share/datasets/fashion-mnist";

    /// <summary>Fashion-MNIST's classes, index = label (short names for the command line).</summary>
    public static readonly string[] FashionMnistClasses =
        ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"];

    /// <summary>CIFAR-10's classes.</summary>
    public static readonly string[] Cifar10Classes =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>Opens <paramref name="spec"/>; errors say what was expected.</summary>
    public static ImageDataset Open(string spec)
    {
        switch (spec.ToLowerInvariant())
        {
            case "fashion-mnist":
            case "fashion-mnist-test":
                var prefix = spec.EndsWith("test", StringComparison.OrdinalIgnoreCase) ? "t10k" : "train";
                var images = Path.Combine(FashionMnistFolder, $"{prefix}-images-idx3-ubyte.gz");
                if (!File.Exists(images))
                    throw new FileNotFoundException($"Fashion-MNIST is not installed ({images} is missing): apt-get " +
                        $"install dataset-fashion-mnist.", images);
                return IdxDataset.Load(images, Path.Combine(FashionMnistFolder, $"{prefix}-labels-idx1-ubyte.gz"),
                    FashionMnistClasses);
        }
        if (Directory.Exists(spec))
        {
            if (File.Exists(Path.Combine(spec, "data_batch_1.bin")))
                return Cifar10.Load(Directory.GetFiles(spec, "data_batch_*.bin").Order().ToArray());
            return PngFolder(spec);
        }
        if (File.Exists(spec))
        {
            if (spec.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return Cifar10.Load([spec]);
            var labels = spec.Replace("images-idx3", "labels-idx1", StringComparison.Ordinal);
            return IdxDataset.Load(spec, labels != spec && File.Exists(labels) ? labels : null, []);
        }
        throw new DiffusionException(nameof(Training.TrainConfig.Data),
            $"'{spec}': expected fashion-mnist, fashion-mnist-test, an IDX "
            + "images file, a CIFAR-10 binary folder or file, or a folder of PNGs.");
    }

    /// <summary>
    /// Every PNG under <paramref name="folder"/>; subfolder names become classes when there are several.
    /// </summary>
    public static ImageDataset PngFolder(string folder)
    {
        var files = Directory.GetFiles(folder, "*.png",
            SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
        if (files.Length == 0)
            throw new DiffusionException(nameof(Training.TrainConfig.Data), $"'{folder}': no .png files found.");
        var classes = files.Select(f =>
            Path.GetRelativePath(folder, Path.GetDirectoryName(f)!)).Distinct().Order(StringComparer.Ordinal).ToArray();
        bool labelled = classes.Length > 1;
        Image8? first = null;
        var pixels = new List<byte>();
        var labels = new List<int>();
        foreach (var file in files)
        {
            var image = Png.Read(file);
            first ??= image;
            if (image.Width != first.Width || image.Height != first.Height || image.Channels != first.Channels)
                throw new DiffusionException($"'{file}' is {image.Width}×{image.Height}×{image.Channels}, unlike " +
                    $"'{files[0]}' ({first.Width}×{first.Height}×{first.Channels}); all images must share one size.");
            pixels.AddRange(ImageGrid.FromImage(image).Select(Pixels.ToByte));
            labels.Add(Array.IndexOf(classes, Path.GetRelativePath(folder, Path.GetDirectoryName(file)!)));
        }
        return new ImageDataset(pixels.ToArray(), labelled ? labels.ToArray() : null, files.Length, first!.Channels,
            first.Height, first.Width, labelled ? classes : [], folder);
    }
}

/// <summary>CIFAR-10's binary batches: records of 1 label byte + 3072 bytes (R, G, B planes of 32×32).</summary>
public static class Cifar10
{
    private const int Record = 1 + 3 * 32 * 32;

    /// <summary>Concatenates the given batch files.</summary>
    public static ImageDataset Load(string[] files)
    {
        var pixels = new List<byte>();
        var labels = new List<int>();
        foreach (var file in files)
        {
            var bytes = File.ReadAllBytes(file);
            if (bytes.Length == 0 || bytes.Length % Record != 0)
                throw new DiffusionException($"CIFAR-10 file '{file}' is truncated: {bytes.Length} bytes is not a " +
                    $"whole number of {Record}-byte records (the last record starts at " +
                        $"offset {bytes.Length / Record * Record}).");
            for (int offset = 0; offset < bytes.Length; offset += Record)
            {
                if (bytes[offset] > 9)
                    throw new DiffusionException($"CIFAR-10 file '{file}': label {bytes[offset]} at offset {offset} " +
                        $"(expected 0…9).");
                labels.Add(bytes[offset]);
                pixels.AddRange(bytes.AsSpan(offset + 1, Record - 1).ToArray());
            }
        }
        return new ImageDataset(pixels.ToArray(), labels.ToArray(), labels.Count, 3, 32, 32, Datasets.Cifar10Classes,
            string.Join(", ", files));
    }
}
