using Diffusion.Trainer.Data;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Training;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

[Collection(DefaultGenerator.Name)]
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

    [Fact]
    public void A_short_training_run_classifies_far_above_chance()
    {
        var train = Datasets.Open("fashion-mnist").Take(2048);
        var test = Datasets.Open("fashion-mnist-test").Take(1000);
        var losses = new List<double>();
        using var net = ClassifierTraining.Train(train, epochs: 2, batch: 64, lr: 2e-3, seed: 1,
            new Progress(r => losses.Add(r.Loss)));
        double accuracy = ClassifierTraining.Accuracy(net, test);
        Assert.True(accuracy > 0.6, $"accuracy {accuracy:P1} after 64 steps (chance: 10 %)");
        Assert.True(losses.TakeLast(8).Average() < 0.5 * losses.Take(8).Average(),
            $"loss {losses.Take(8).Average():0.00} → {losses.TakeLast(8).Average():0.00}");
    }

    private sealed class Progress(Action<(int Epoch, int Step, double Loss)> report)
        : IProgress<(int Epoch, int Step, double Loss)>
    {
        public void Report((int Epoch, int Step, double Loss) value) => report(value);
    }
}
