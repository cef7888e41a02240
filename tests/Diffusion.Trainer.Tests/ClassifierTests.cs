using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Torch;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Trainer.Tests;

public class ClassifierTests
{
    [Fact]
    public void Classifier_export_matches_libtorch_for_logits_and_features()
    {
        using var g = new Generator(4);
        using var net = new Classifier(1, 28, 10, g);
        net.Eval();
        using var scope = DisposeScope.Enter();
        var x = Tensor.Rand([3, 1, 28, 28], g) * 2 - 1;
        float[] logits, features;
        using (new NoGrad())
        {
            var (l, f) = net.Forward(x);
            (logits, features) = (l.ToFloatArray(), f.ToFloatArray());
        }
        using var session = new InferenceSession(net.ToOnnx());
        using var input = OrtValue.CreateTensorValueFromMemory(x.ToFloatArray(), [3, 1, 28, 28]);
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
