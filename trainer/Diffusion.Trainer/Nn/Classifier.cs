using Diffusion.OnnxGraph;
using Diffusion.Trainer.Export;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Diffusion.Trainer.Nn;

/// <summary>
/// A small convolutional classifier whose penultimate layer is the feature space of the Fréchet distance:
/// conv 3×3 → stride-2 conv → conv → stride-2 conv (each GroupNorm + SiLU) → flatten → Linear → SiLU = features
/// → Linear = logits.
/// </summary>
public sealed class Classifier : nn.Module<Tensor, (Tensor Logits, Tensor Features)>
{
    private readonly ModuleList<Conv2d> convs = new();
    private readonly ModuleList<GroupNorm> norms = new();
    private readonly Linear hidden, logits;

    /// <summary>Width of the feature vector.</summary>
    public int FeatureDim { get; }
    /// <summary>Number of classes.</summary>
    public int Classes { get; }
    /// <summary>Input channels.</summary>
    public int InChannels { get; }
    /// <summary>Input height = width.</summary>
    public int ImageSize { get; }

    /// <summary>
    /// A classifier of <paramref name="channels"/>×<paramref name="size"/>² images into <paramref name="classes"/>
    /// classes (weights from the default generator).
    /// </summary>
    public Classifier(int channels, int size, int classes, int width = 32, int featureDim = 128)
        : base(nameof(Classifier))
    {
        if (size % 4 != 0)
            throw new ArgumentException($"The classifier needs an image size divisible by 4, got {size}.");
        (InChannels, ImageSize, Classes, FeatureDim) = (channels, size, classes, featureDim);
        (long In, long Out, long Stride)[] layers = [(channels, width, 1), (width, width, 2), (width, 2 * width, 1),
            (2 * width, 2 * width, 2)];
        foreach (var (cin, cout, stride) in layers)
        {
            convs.Add(nn.Conv2d(cin, cout, 3, stride: stride, padding: 1));
            norms.Add(Layers.GroupNorm(8, cout));
        }
        hidden = nn.Linear(2 * width * (size / 4) * (size / 4), featureDim);
        logits = nn.Linear(featureDim, classes);
        register_module("convs", convs);
        register_module("norms", norms);
        register_module("hidden", hidden);
        register_module("logits", logits);
    }

    /// <summary>Logits [B, classes] and features [B, FeatureDim] for images in [−1, 1].</summary>
    public override (Tensor Logits, Tensor Features) forward(Tensor x)
    {
        var h = x;
        for (int i = 0; i < convs.Count; i++) h = F.silu(norms[i].forward(convs[i].forward(h)));
        var features = F.silu(hidden.forward(h.reshape(h.shape[0], -1)));
        return (logits.forward(features), features);
    }

    /// <summary>ONNX with two outputs, "logits" and "features".</summary>
    public byte[] ToOnnx()
    {
        var g = new GraphBuilder("classifier");
        var e = new OnnxEmitter(g, this);
        var x = g.Input("image", OnnxEmitter.Float, "batch", InChannels, ImageSize, ImageSize);
        var h = x;
        for (int i = 0; i < convs.Count; i++) h = e.Silu(e.GroupNorm(norms[i], e.Conv(convs[i], h)));
        var features = e.Silu(e.Linear(hidden, g.Reshape(h, 0, -1)));
        g.Output(e.Linear(logits, features), "logits", OnnxEmitter.Float, "batch", Classes);
        g.Output(features, "features", OnnxEmitter.Float, "batch", FeatureDim);
        return new ModelBuilder(g).Doc("Diffusion for .NET feature classifier: 'features' is the space of the " +
            "Fréchet distance.").ToBytes();
    }
}
