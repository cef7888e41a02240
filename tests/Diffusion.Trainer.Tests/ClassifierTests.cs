using Diffusion.Trainer.Nn;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

public class ClassifierTests
{
    [Fact]
    public void Classifier_export_matches_torchsharp_for_logits_and_features()
    {
        random.manual_seed(4);
        using var net = new Classifier(1, 28, 10);
        using var g = new Generator(4);
        ExportParityTests.RandomizeAllWeights(net, g);
        net.eval();
        using var scope = NewDisposeScope();
        var x = rand([3, 1, 28, 28], generator: g) * 2 - 1;
        float[] logits, features;
        using (no_grad())
        {
            var (l, f) = net.forward(x);
            (logits, features) = (l.data<float>().ToArray(), f.data<float>().ToArray());
        }
        using var session = new InferenceSession(net.ToOnnx());
        using var input = OrtValue.CreateTensorValueFromMemory(x.data<float>().ToArray(), [3, 1, 28, 28]);
        using var run = new RunOptions();
        using var outputs = session.Run(run, ["image"], [input], ["logits", "features"]);
        var onnxLogits = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        var onnxFeatures = outputs[1].GetTensorDataAsSpan<float>().ToArray();
        Assert.Equal(30, onnxLogits.Length);
        Assert.Equal(3 * net.FeatureDim, onnxFeatures.Length);
        Assert.True(logits.Zip(onnxLogits, (a, b) => Math.Abs(a - b)).Max() <= 1e-4);
        Assert.True(features.Zip(onnxFeatures, (a, b) => Math.Abs(a - b)).Max() <= 1e-4);
    }
}
