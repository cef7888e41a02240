using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;

namespace Diffusion.Evaluation;

/// <summary>What one evaluated configuration scored.</summary>
public sealed record EvalResult(string Sampler, int Steps, double FrechetDistance, double ClassAccuracy,
    double[] PerClassAccuracy,
    double EvaluationsPerImage, double MillisecondsPerImage, int Count)
{
    /// <summary>The kernel inception distance to the reference images, with its standard error.</summary>
    public KidEstimate Kid { get; init; }
    /// <summary>
    /// The same distances between the reference images and a second sample of the data at the same count — the noise
    /// floor; null without one.
    /// </summary>
    public SetDistance? Floor { get; init; }
    /// <summary>
    /// The classifier's accuracy on the same number of labelled reference images — what real images score; null without
    /// labels.
    /// </summary>
    public ReferenceAccuracy? Reference { get; init; }
}

/// <summary>
/// How often the classifier recognises <see cref="Count"/> real, labelled images: per class, and overall as the mean
/// over the classes present (generated classes are cycled, so each weighs the same).
/// </summary>
public sealed record ReferenceAccuracy(double Overall, double[] PerClass, int Count);

/// <summary>Fréchet and kernel inception distances between two sets of <see cref="Count"/> images each.</summary>
public sealed record SetDistance(double FrechetDistance, KidEstimate Kid, int Count);

/// <summary>
/// Scores generated images against reference images in the classifier's feature space: Fréchet distance, and for
/// class-conditional models the fraction of images the classifier assigns to the class they were asked for.
/// Reference features are computed once, so many sampler configurations can be compared against the same set; n
/// generated images are compared with the first n reference images. Given a second sample of the data (the training
/// set when the reference is the test set), every result carries the noise floor: the same distances between n
/// reference and n floor images, which is what a perfect model would score at that count.
/// </summary>
public sealed class Evaluator
{
    private readonly DiffusionModel _model;

    /// <summary>The model whose images are measured.</summary>
    public DiffusionModel Model => _model;
    private readonly FeatureClassifier _classifier;
    private readonly float[] _referenceFeatures;
    private readonly int _referenceCount;
    private readonly float[]? _floorFeatures;
    private readonly int _floorCount;
    private readonly Dictionary<(int Count, int Sample), SetDistance> _floors = [];
    private readonly int[]? _referenceLabels, _referencePredicted;

    /// <summary>
    /// Prepares the reference statistics from <paramref name="referenceImages"/> ([n, C, H, W] in [−1, 1]) and, when
    /// given, <paramref name="floorImages"/>: a second sample of the data for the noise floor, and
    /// <paramref name="referenceLabels"/>: the reference images' classes, for the classifier's accuracy on real images.
    /// </summary>
    public Evaluator(DiffusionModel model, FeatureClassifier classifier, float[] referenceImages, int referenceCount,
        float[]? floorImages = null, int floorCount = 0, int[]? referenceLabels = null)
    {
        if (classifier.ImageSize != model.ImageSize)
            throw new DiffusionException($"The classifier takes images of {classifier.ImageSize} values but model " +
                $"'{model.Source}' makes {model.ImageSize}.");
        if (referenceLabels is not null
            && (referenceLabels.Length < referenceCount
                || referenceLabels.Take(referenceCount).Any(l => l < 0 || l >= classifier.Classes)))
            throw new DiffusionException($"The reference labels must be {referenceCount} classes in " +
                $"0…{classifier.Classes - 1}.");
        (_model, _classifier, _referenceCount) = (model, classifier, referenceCount);
        (_referenceFeatures, _referencePredicted) = classifier.Run(referenceImages, referenceCount);
        _referenceLabels = referenceLabels;
        if (floorImages is not null && floorCount > 0)
            (_floorFeatures, _floorCount) = (classifier.Run(floorImages, floorCount).Features, floorCount);
    }

    /// <summary>Reference images available.</summary>
    public int ReferenceCount => _referenceCount;

    /// <summary>
    /// The noise floor at <paramref name="count"/> images: the first <paramref name="count"/> reference images vs the
    /// <paramref name="sample"/>-th disjoint run of <paramref name="count"/> floor images (sample 0: the first ones,
    /// fewer when there are fewer). Null without a floor set, or when it holds fewer than (sample + 1)·count images.
    /// </summary>
    public SetDistance? Floor(int count, int sample = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sample);
        if (_floorFeatures is null) return null;
        count = Math.Min(count, Math.Min(_referenceCount, _floorCount));
        if ((long)(sample + 1) * count > _floorCount) return null;
        lock (_floors)
        {
            if (!_floors.TryGetValue((count, sample), out var floor))
                _floors[(count, sample)] = floor = Distance(_referenceFeatures,
                    _floorFeatures.AsSpan(sample * count * _classifier.FeatureDim), count);
            return floor;
        }
    }

    /// <summary>
    /// The classifier's accuracy on the first <paramref name="count"/> reference images; null without their labels.
    /// </summary>
    public ReferenceAccuracy? Accuracy(int count)
    {
        if (_referenceLabels is null) return null;
        count = Math.Min(count, _referenceCount);
        var (perClass, _) = Tally(_referenceLabels, _referencePredicted!, count, _classifier.Classes);
        return new ReferenceAccuracy(perClass.Where(a => !double.IsNaN(a)).DefaultIfEmpty(double.NaN).Average(),
            perClass, count);
    }

    /// <summary>
    /// Of the first <paramref name="count"/> images, each class's share predicted as the class wanted (NaN where none
    /// was wanted), and all hits.
    /// </summary>
    private static (double[] PerClass, int Hits) Tally(int[] wanted, int[] predicted, int count, int classes)
    {
        var hits = new int[classes];
        var totals = new int[classes];
        for (int i = 0; i < count; i++)
        {
            totals[wanted[i]]++;
            if (predicted[i] == wanted[i]) hits[wanted[i]]++;
        }
        return (hits.Select((h, c) => totals[c] == 0 ? double.NaN : h / (double)totals[c]).ToArray(), hits.Sum());
    }

    private SetDistance Distance(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int count)
    {
        int dim = _classifier.FeatureDim;
        return new SetDistance(FrechetDistance.Compute(a[..(count * dim)], count, b[..(count * dim)], count, dim),
            KernelInceptionDistance.Compute(a, count, b, count, dim), count);
    }

    /// <summary>
    /// Generates <paramref name="request"/>.Count images (classes cycled when the model is conditional) and scores
    /// them.
    /// </summary>
    public EvalResult Evaluate(GenerationRequest request, CancellationToken cancellation = default,
        IProgress<GenerationProgress>? progress = null) =>
        EvaluateSeeds(request, 1, cancellation, progress).Runs[0];

    /// <summary>
    /// <see cref="Evaluate(GenerationRequest, CancellationToken, IProgress{GenerationProgress})"/> at
    /// <paramref name="seeds"/> sampling seeds — request.Seed, request.Seed + 1, … — run k with the k-th disjoint floor
    /// sample (none where the floor set runs out).
    /// </summary>
    public EvalSeries EvaluateSeeds(GenerationRequest request, int seeds, CancellationToken cancellation = default,
        IProgress<GenerationProgress>? progress = null)
    {
        if (seeds < 1) throw new DiffusionArgumentException(nameof(seeds), $"expected at least 1, got {seeds}.");
        var runs = new List<EvalResult>(seeds);
        for (int k = 0; k < seeds; k++)
        {
            var run = SeedRun(request, k, _model.NumClasses);
            runs.Add(Score(run, new ImageGenerator(_model).Generate(run, progress, cancellation), k));
        }
        return new EvalSeries(runs);
    }

    /// <summary>
    /// The request of seed run <paramref name="k"/>: the seed advanced by k and, for a model of
    /// <paramref name="classes"/> classes given no labels, the classes cycled over the images.
    /// </summary>
    public static GenerationRequest SeedRun(GenerationRequest request, int k, int classes) => request with
    {
        Seed = unchecked(request.Seed + (ulong)k),
        ClassLabels = classes > 0 && request.ClassLabels.Length == 0
            ? Enumerable.Range(0, request.Count).Select(i => i % classes).ToArray() : request.ClassLabels,
    };

    /// <summary>
    /// Scores the images <paramref name="result"/> holds, generated for <paramref name="request"/> (elsewhere, e.g.
    /// by several processes), against the reference and the <paramref name="floorSample"/>-th floor sample.
    /// </summary>
    public EvalResult Score(GenerationRequest request, GenerationResult result, int floorSample = 0)
    {
        int classes = _model.NumClasses;
        var (features, predicted) = _classifier.Run(result.Images, result.Count);
        int dim = _classifier.FeatureDim, n = Math.Min(result.Count, _referenceCount);
        double fd = FrechetDistance.Compute(features, result.Count, _referenceFeatures.AsSpan(0, n * dim), n, dim);
        var kid = KernelInceptionDistance.Compute(features, result.Count, _referenceFeatures, n, dim);
        var perClass = new double[classes];
        double accuracy = double.NaN;
        if (classes > 0)
        {
            var wanted = request.ClassLabels.Length == 1
                ? Enumerable.Repeat(request.ClassLabels[0], result.Count).ToArray() : request.ClassLabels;
            (perClass, int hits) = Tally(wanted, predicted, result.Count, classes);
            accuracy = hits / (double)result.Count;
        }
        return new EvalResult(result.Sampler, request.Steps, fd, accuracy, perClass, result.EvaluationsPerImage,
            result.TotalTime.TotalMilliseconds / result.Count, result.Count)
            {
                Kid = kid, Floor = Floor(result.Count, floorSample), Reference = classes > 0 ? Accuracy(n) : null,
            };
    }

    /// <summary>
    /// The floor sample that goes with a named reference set: the training set for fashion-mnist-test, else null.
    /// </summary>
    public static string? DefaultFloor(string reference) => reference == "fashion-mnist-test" ? "fashion-mnist" : null;

    /// <summary>
    /// The file of a named Fashion-MNIST set (Debian's dataset-fashion-mnist) — "images-idx3" or "labels-idx1" — or
    /// null for other names.
    /// </summary>
    private static string? FashionMnistFile(string spec, string kind) =>
        spec switch { "fashion-mnist-test" => "t10k", "fashion-mnist" => "train", _ => null } is { } set
            ? $"/usr/share/datasets/fashion-mnist/{set}-{kind}-ubyte.gz" : null;

    /// <summary>
    /// The first <paramref name="count"/> labels of a named reference set (fashion-mnist-test or fashion-mnist); null
    /// for other references, whose labels are not known.
    /// </summary>
    public static int[]? LoadReferenceLabels(string spec, int count)
    {
        if (FashionMnistFile(spec, "labels-idx1") is not { } path) return null;
        if (!File.Exists(path))
            throw new DiffusionException("ReferenceLabels",
                $"'{path}' do not exist (apt-get install dataset-fashion-mnist).");
        try
        {
            var (dims, data) = Idx.Read(path);
            if (dims.Length != 1)
                throw new DiffusionException("ReferenceLabels", $"'{path}' has {dims.Length} dimensions; expected 1.");
            return data.Take(count).Select(b => (int)b).ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DiffusionException(e.Message, e);
        }
    }

    /// <summary>
    /// Reference images: fashion-mnist-test or fashion-mnist (Debian's dataset-fashion-mnist), an IDX images file, or a
    /// float32 .npy [N,C,H,W] in [−1, 1].
    /// </summary>
    public static (float[] Images, int Count) LoadReference(string spec, int count, int imageSize)
    {
        spec = FashionMnistFile(spec, "images-idx3") ?? spec;
        if (spec.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            var array = Npy.Load(spec);
            if (array.Shape.Length < 2 || array.Shape[0] == 0)
                throw new DiffusionException("Reference",
                    $"'{spec}' has shape ({string.Join(",", array.Shape)}); expected (N,C,H,W) with N ≥ 1.");
            int n = Math.Min(count, array.Shape[0]);
            if (array.Data.Length / array.Shape[0] != imageSize)
                throw new DiffusionException("Reference",
                    $"'{spec}' holds images of {array.Data.Length / array.Shape[0]} values; the model " +
                        $"makes {imageSize}.");
            return (array.Data[..(n * imageSize)], n);
        }
        if (!File.Exists(spec))
            throw new DiffusionException("Reference",
                $"'{spec}' does not exist (for fashion-mnist-test: apt-get install dataset-fashion-mnist).");
        try
        {
            var (pixels, _, total, height, width) = Idx.ReadImages(spec, null);
            if (height * width != imageSize)
                throw new DiffusionException("Reference",
                    $"'{spec}' holds {height}×{width} images; the model makes {imageSize} values per image.");
            int n = Math.Min(count, total);
            var images = new float[n * imageSize];
            for (int i = 0; i < images.Length; i++) images[i] = Pixels.ToModel(pixels[i]);
            return (images, n);
        }
        catch (InvalidDataException e)
        {
            throw new DiffusionException(e.Message, e);
        }
    }
}
