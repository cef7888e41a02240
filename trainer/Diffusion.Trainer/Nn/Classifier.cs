using Diffusion.OnnxGraph;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Nn;

/// <summary>
/// A small convolutional classifier whose penultimate layer is the feature space of the Fréchet distance:
/// conv 3×3 → stride-2 conv → conv → stride-2 conv (each GroupNorm + SiLU) → flatten → Linear → SiLU = features
/// → Linear = logits.
/// </summary>
public sealed class Classifier : Module
{
    private readonly List<(Conv2d Conv, GroupNorm Norm)> _convs = [];
    private readonly Linear _hidden, _logits;

    /// <summary>Width of the feature vector.</summary>
    public int FeatureDim { get; }
    /// <summary>Number of classes.</summary>
    public int Classes { get; }
    /// <summary>Input channels.</summary>
    public int InChannels { get; }
    /// <summary>Input height = width.</summary>
    public int ImageSize { get; }

    /// <summary>A classifier of <paramref name="channels"/>×<paramref name="size"/>² images into <paramref name="classes"/> classes.</summary>
    public Classifier(int channels, int size, int classes, Generator g, int width = 32, int featureDim = 128)
    {
        if (size % 4 != 0) throw new ArgumentException($"The classifier needs an image size divisible by 4, got {size}.");
        (InChannels, ImageSize, Classes, FeatureDim) = (channels, size, classes, featureDim);
        (long In, long Out, long Stride)[] layers = [(channels, width, 1), (width, width, 2), (width, 2 * width, 1), (2 * width, 2 * width, 2)];
        for (int i = 0; i < layers.Length; i++)
        {
            var (cin, cout, stride) = layers[i];
            _convs.Add((Child($"conv{i}", new Conv2d(cin, cout, 3, g, stride, padding: 1)), Child($"norm{i}", new GroupNorm(8, cout))));
        }
        _hidden = Child("hidden", new Linear(2 * width * (size / 4) * (size / 4), featureDim, g));
        _logits = Child("logits", new Linear(featureDim, classes, g));
    }

    /// <summary>Logits [B, classes] and features [B, FeatureDim] for images in [−1, 1].</summary>
    public (Tensor Logits, Tensor Features) Forward(Tensor x)
    {
        using var scope = DisposeScope.Enter();
        var h = x;
        foreach (var (conv, norm) in _convs) h = norm.Forward(conv.Forward(h)).Silu();
        var features = _hidden.Forward(h.Reshape(h.Size(0), -1)).Silu();
        return (scope.MoveToOuter(_logits.Forward(features)), scope.MoveToOuter(features));
    }

    /// <summary>ONNX with two outputs, "logits" and "features".</summary>
    public byte[] ToOnnx()
    {
        var g = new GraphBuilder("classifier");
        var e = new OnnxEmitter(g);
        var x = g.Input("image", OnnxEmitter.Float, "batch", InChannels, ImageSize, ImageSize);
        bool training = Training;
        Eval();
        try
        {
            using var noGrad = new NoGrad();
            var h = x;
            foreach (var (conv, norm) in _convs) h = e.Silu(norm.Export(e, conv.Export(e, h)));
            var pooled = g.Reshape(h, 0, -1);
            var features = e.Silu(_hidden.Export(e, pooled));
            g.Output(_logits.Export(e, features), "logits", OnnxEmitter.Float, "batch", Classes);
            g.Output(features, "features", OnnxEmitter.Float, "batch", FeatureDim);
        }
        finally
        {
            Train(training);
        }
        return new ModelBuilder(g).Doc("Diffusion for .NET feature classifier: 'features' is the space of the Fréchet distance.").ToBytes();
    }
}
