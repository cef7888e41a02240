using Diffusion.Runtime.Imaging;

namespace Diffusion.Trainer.Data;

/// <summary>
/// Opens a data set by name or path: fashion-mnist[-test], an IDX file, a CIFAR-10 binary folder/file, or a folder of
/// images.
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

    /// <summary>
    /// Opens <paramref name="spec"/>; an image folder is resized to <paramref name="size"/>×<paramref name="size"/>
    /// when given (other data sets must have that size already). Errors say what was expected.
    /// </summary>
    public static ImageDataset Open(string spec, int? size = null)
    {
        if (size is < 1 or > 4096)
            throw new DiffusionArgumentException(nameof(Training.TrainConfig.ImageSize),
                $"must lie in 1…4096, got {size}.");
        if (Directory.Exists(spec) && !File.Exists(Path.Combine(spec, "data_batch_1.bin")))
            return ImageFolder(spec, size);
        var data = OpenArrays(spec);
        if (size is int s && (data.Height != s || data.Width != s))
            throw new DiffusionArgumentException(nameof(Training.TrainConfig.ImageSize),
                $"{s}: '{spec}' holds {data.Height}×{data.Width} images; only image folders are resized.");
        return data;
    }

    private static ImageDataset OpenArrays(string spec)
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
        if (Directory.Exists(spec)) return Cifar10.Load(Directory.GetFiles(spec, "data_batch_*.bin").Order().ToArray());
        if (File.Exists(spec))
        {
            if (spec.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return Cifar10.Load([spec]);
            var labels = spec.Replace("images-idx3", "labels-idx1", StringComparison.Ordinal);
            return IdxDataset.Load(spec, labels != spec && File.Exists(labels) ? labels : null, []);
        }
        throw new DiffusionException(nameof(Training.TrainConfig.Data),
            $"'{spec}': expected fashion-mnist, fashion-mnist-test, an IDX images file, a CIFAR-10 binary folder or "
            + "file, or a folder of images.");
    }

    /// <summary>
    /// Every image file under <paramref name="folder"/> (<see cref="ImageFile.InputFormats"/>, by extension);
    /// subfolder names become classes when there are several. Images are fitted to
    /// <paramref name="size"/>×<paramref name="size"/> (centre crop, Lanczos3) when given — otherwise all must share
    /// one size; a folder of gray files (PNG, JPEG) has one channel, any other three (transparency on black). Files of
    /// other kinds are counted in the summary, never read.
    /// </summary>
    public static ImageDataset ImageFolder(string folder, int? size = null)
    {
        var all = FilesUnder(folder).Order(StringComparer.Ordinal).ToArray();
        var files = all.Where(ImageFile.HasImageExtension).ToArray();
        var others = all.Where(f => !ImageFile.HasImageExtension(f)).Select(f => Path.GetRelativePath(folder, f))
            .ToArray();
        if (files.Length == 0)
            throw new DiffusionException(nameof(Training.TrainConfig.Data),
                $"'{folder}': no image files found ({string.Join(", ", ImageFile.InputExtensions)})"
                + (others.Length > 0 ? $"; it holds {others.Length} other file(s), e.g. '{others[0]}'." : "."));
        string ClassOf(string file) => Path.GetRelativePath(folder, Path.GetDirectoryName(file)!);
        var classes = files.Select(ClassOf).Distinct().Order(StringComparer.Ordinal).ToArray();
        bool labelled = classes.Length > 1;
        // every header first: a mixed size is refused before anything is decoded
        var headers = files.Select(f => ImageFile.Identify(f)).ToArray();
        int odd = size is null
            ? Array.FindIndex(headers, h => (h.Width, h.Height) != (headers[0].Width, headers[0].Height)) : -1;
        if (odd >= 0)
            throw new DiffusionArgumentException(nameof(Training.TrainConfig.ImageSize),
                $"'{files[odd]}' is {headers[odd].Width}×{headers[odd].Height}, unlike '{files[0]}' " +
                $"({headers[0].Width}×{headers[0].Height}): give a size to resize every image to, or images of one " +
                "size.");
        int channels = headers.All(h => h.Gray) ? 1 : 3;
        var read = new ImageReadOptions { Channels = channels, Width = size, Height = size };
        int height = size ?? headers[0].Height, width = size ?? headers[0].Width, plane = height * width;
        var pixels = new byte[checked(files.Length * channels * plane)];
        for (int i = 0; i < files.Length; i++)
        {
            var image = ImageFile.Read(files[i], read);
            for (int c = 0; c < channels; c++)
                for (int p = 0; p < plane; p++)
                    pixels[(i * channels + c) * plane + p] = image.Pixels[p * channels + c];
        }
        var labels = files.Select(f => Array.IndexOf(classes, ClassOf(f))).ToArray();
        var counts = classes.Select((name, k) => $"{name} {labels.Count(l => l == k)}");
        var summary = $"read {files.Length} images of {width}×{height}×{channels} from '{folder}'"
            + (labelled ? $" ({string.Join(", ", counts)})" : "")
            + (others.Length > 0
                ? $"; skipped {others.Length} file(s) that are not images: "
                    + string.Join(", ", others.Take(5).Select(o => $"'{o}'")) + (others.Length > 5 ? ", …" : "")
                : "");
        return new ImageDataset(pixels, labelled ? labels : null, files.Length, channels, height, width,
            labelled ? classes : [], folder) { Summary = summary };
    }

    /// <summary>
    /// Every file under <paramref name="folder"/>, following linked folders (a class may live elsewhere) but refusing
    /// a folder reached twice — a link loop (<c>self -> .</c>) or two links to one folder would train on duplicates.
    /// </summary>
    private static List<string> FilesUnder(string folder)
    {
        var files = new List<string>();
        var seen = new Dictionary<string, string>(); // identity on disk → the path it was first reached by
        var pending = new Stack<string>([folder]);
        while (pending.TryPop(out var directory))
        {
            var identity = InputFile.IdentityOf(directory) ?? directory;
            if (!seen.TryAdd(identity, directory))
                throw new DiffusionException(nameof(Training.TrainConfig.Data), $"'{directory}' is the folder "
                    + $"'{seen[identity]}' again (through a link); its images would be read twice. Remove the link.");
            files.AddRange(Directory.EnumerateFiles(directory));
            foreach (var sub in Directory.EnumerateDirectories(directory).Order(StringComparer.Ordinal).Reverse())
                pending.Push(sub);
        }
        return files;
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
            var bytes = InputFile.ReadAllBytes(file, 1L << 30, $"CIFAR-10 file '{file}'");
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
