using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;

namespace Diffusion.Evaluation;

/// <summary>What one evaluated configuration scored.</summary>
public sealed record EvalResult(string Sampler, int Steps, double FrechetDistance, double ClassAccuracy, double[] PerClassAccuracy,
    double EvaluationsPerImage, double MillisecondsPerImage, int Count);

/// <summary>
/// Scores generated images against reference images in the classifier's feature space: Fréchet distance, and for
/// class-conditional models the fraction of images the classifier assigns to the class they were asked for.
/// Reference features are computed once, so many sampler configurations can be compared against the same set.
/// </summary>
public sealed class Evaluator
{
    private readonly DiffusionModel _model;

    /// <summary>The model whose images are measured.</summary>
    public DiffusionModel Model => _model;
    private readonly FeatureClassifier _classifier;
    private readonly float[] _referenceFeatures;
    private readonly int _referenceCount;

    /// <summary>Prepares the reference statistics from <paramref name="referenceImages"/> ([n, C, H, W] in [−1, 1]).</summary>
    public Evaluator(DiffusionModel model, FeatureClassifier classifier, float[] referenceImages, int referenceCount)
    {
        if (classifier.ImageSize != model.ImageSize)
            throw new DiffusionException($"The classifier takes images of {classifier.ImageSize} values but model '{model.Source}' makes {model.ImageSize}.");
        (_model, _classifier, _referenceCount) = (model, classifier, referenceCount);
        _referenceFeatures = classifier.Run(referenceImages, referenceCount).Features;
    }

    /// <summary>Generates <paramref name="request"/>.Count images (classes cycled when the model is conditional) and scores them.</summary>
    public EvalResult Evaluate(GenerationRequest request, CancellationToken cancellation = default, IProgress<GenerationProgress>? progress = null)
    {
        int classes = _model.NumClasses;
        if (classes > 0 && request.ClassLabels.Length == 0)
            request = request with { ClassLabels = Enumerable.Range(0, request.Count).Select(i => i % classes).ToArray() };
        var result = new ImageGenerator(_model).Generate(request, progress, cancellation);
        var (features, predicted) = _classifier.Run(result.Images, result.Count);
        double fd = FrechetDistance.Compute(features, result.Count, _referenceFeatures, _referenceCount, _classifier.FeatureDim);
        var perClass = new double[classes];
        double accuracy = double.NaN;
        if (classes > 0)
        {
            var hits = new int[classes];
            var totals = new int[classes];
            for (int i = 0; i < result.Count; i++)
            {
                int wanted = request.ClassLabels.Length == 1 ? request.ClassLabels[0] : request.ClassLabels[i];
                totals[wanted]++;
                if (predicted[i] == wanted) hits[wanted]++;
            }
            for (int c = 0; c < classes; c++) perClass[c] = totals[c] == 0 ? double.NaN : hits[c] / (double)totals[c];
            accuracy = hits.Sum() / (double)result.Count;
        }
        var sampler = request.ResolveSampler(_model.Config);
        return new EvalResult(SamplerRegistry.Resolve(sampler.Name) ?? sampler.Name, request.Steps, fd, accuracy, perClass, result.EvaluationsPerImage,
            result.TotalTime.TotalMilliseconds / result.Count, result.Count);
    }

    /// <summary>Reference images: fashion-mnist-test (Debian's dataset-fashion-mnist), an IDX images file, or a float32 .npy [N,C,H,W] in [−1, 1].</summary>
    public static (float[] Images, int Count) LoadReference(string spec, int count, int imageSize)
    {
        if (spec == "fashion-mnist-test") spec = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
        if (spec.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            var array = Npy.Load(spec);
            if (array.Shape.Length < 2 || array.Shape[0] == 0) throw new DiffusionException($"Reference images '{spec}' has shape ({string.Join(",", array.Shape)}); expected (N,C,H,W) with N ≥ 1.");
            int n = Math.Min(count, array.Shape[0]);
            if (array.Data.Length / array.Shape[0] != imageSize) throw new DiffusionException($"Reference images '{spec}' holds images of {array.Data.Length / array.Shape[0]} values; the model makes {imageSize}.");
            return (array.Data[..(n * imageSize)], n);
        }
        if (!File.Exists(spec)) throw new DiffusionException($"Reference images '{spec}' does not exist (for fashion-mnist-test: apt-get install dataset-fashion-mnist).");
        try
        {
            var (pixels, _, total, height, width) = Idx.ReadImages(spec, null);
            if (height * width != imageSize) throw new DiffusionException($"Reference images '{spec}' holds {height}×{width} images; the model makes {imageSize} values per image.");
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
