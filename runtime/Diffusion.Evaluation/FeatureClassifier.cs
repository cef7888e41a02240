using Diffusion.Runtime;
using Diffusion.Runtime.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Evaluation;

/// <summary>
/// The quality classifier (an ONNX model with input "image" and outputs "logits" and "features"), run through ONNX
/// Runtime.
/// </summary>
public sealed class FeatureClassifier : IDisposable
{
    private readonly InferenceSession _session;

    /// <summary>Width of the feature vectors.</summary>
    public int FeatureDim { get; }
    /// <summary>Number of classes.</summary>
    public int Classes { get; }
    /// <summary>Values per input image.</summary>
    public int ImageSize { get; }
    private readonly long[] _imageShape;

    /// <summary>Loads the classifier; a file that is not one is a clear error.</summary>
    public FeatureClassifier(string path, SessionSettings settings)
    {
        if (!File.Exists(path))
            throw new DiffusionException("Classifier",
                $"'{path}' does not exist; a feature classifier is an ONNX model with an input 'image' and outputs "
                + "'logits' and 'features' (the trainer's ClassifierTraining writes one).");
        using var options = settings.CreateOptions();
        try { _session = new InferenceSession(path, options); }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException("Classifier", $"'{path}' could not be loaded: {e.Message.Trim()}", e);
        }
        if (!_session.InputMetadata.TryGetValue("image", out var input)
            || !_session.OutputMetadata.ContainsKey("features") || !_session.OutputMetadata.ContainsKey("logits"))
        {
            _session.Dispose();
            throw new DiffusionException("Classifier",
                $"'{path}' needs an input 'image' and outputs 'logits' and 'features' (as ClassifierTraining writes).");
        }
        _imageShape = input.Dimensions.Select(d => (long)d).ToArray();
        ImageSize = (int)(_imageShape[1] * _imageShape[2] * _imageShape[3]);
        FeatureDim = _session.OutputMetadata["features"].Dimensions[1];
        Classes = _session.OutputMetadata["logits"].Dimensions[1];
    }

    /// <summary>Features [n, FeatureDim] and predicted classes [n] for images [n, C, H, W] in [−1, 1].</summary>
    public (float[] Features, int[] Predicted) Run(ReadOnlySpan<float> images, int count, int batch = 256)
    {
        var features = new float[count * FeatureDim];
        var predicted = new int[count];
        using var run = new RunOptions();
        for (int start = 0; start < count; start += batch)
        {
            int n = Math.Min(batch, count - start);
            using var input = OrtValue.CreateTensorValueFromMemory(images.Slice(start * ImageSize,
                n * ImageSize).ToArray(), [n, _imageShape[1], _imageShape[2], _imageShape[3]]);
            using var outputs = _session.Run(run, ["image"], [input], ["logits", "features"]);
            var logits = outputs[0].GetTensorDataAsSpan<float>();
            outputs[1].GetTensorDataAsSpan<float>().CopyTo(features.AsSpan(start * FeatureDim));
            for (int i = 0; i < n; i++)
            {
                var row = logits.Slice(i * Classes, Classes);
                int best = 0;
                for (int c = 1; c < Classes; c++) if (row[c] > row[best]) best = c;
                predicted[start + i] = best;
            }
        }
        return (features, predicted);
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();
}
