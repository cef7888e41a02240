using Diffusion.Trainer.Data;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Optim;
using Diffusion.Trainer.Torch;
using static Diffusion.Trainer.Torch.Functional;

namespace Diffusion.Trainer.Training;

/// <summary>Trains a <see cref="Classifier"/> with cross-entropy and AdamW, and measures its accuracy.</summary>
public static class ClassifierTraining
{
    /// <summary>Trains for <paramref name="epochs"/> passes over shuffled, flipped <paramref name="train"/>; reports (epoch, mean loss).</summary>
    public static Classifier Train(ImageDataset train, int epochs, int batch, double lr, ulong seed, IProgress<(int Epoch, int Step, double Loss)>? progress = null)
    {
        if (train.Labels is null) throw new ArgumentException($"{train.Source} has no labels to train a classifier on.");
        using var g = new Generator(seed);
        var net = new Classifier(train.Channels, train.Height, train.NumClasses, g);
        using var optimizer = new AdamW(net.Parameters(), lr, weightDecay: 1e-4);
        int stepsPerEpoch = train.Count / batch, total = epochs * stepsPerEpoch, step = 0;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            long[] order;
            using (DisposeScope.Enter()) order = Tensor.Rand([train.Count], g).ToFloatArray().Select((u, i) => (u, i)).OrderBy(p => p.u).Select(p => (long)p.i).ToArray();
            for (int s = 0; s < stepsPerEpoch; s++, step++)
            {
                using var scope = DisposeScope.Enter();
                var indices = order.AsSpan(s * batch, batch);
                var flips = Tensor.Rand([batch], g).ToFloatArray().Select(u => u < 0.5f).ToArray();
                var (images, labels) = train.Batch(indices, flips);
                net.ZeroGrad();
                var (logits, _) = net.Forward(images);
                var loss = CrossEntropy(logits, labels!);
                loss.Backward();
                optimizer.LearningRate = lr * 0.5 * (1 + Math.Cos(Math.PI * step / total)); // cosine decay
                optimizer.StepOnce();
                progress?.Report((epoch, step, loss.Item()));
            }
        }
        net.Eval();
        return net;
    }

    /// <summary>Fraction of <paramref name="test"/> classified correctly.</summary>
    public static double Accuracy(Classifier net, ImageDataset test, int batch = 500)
    {
        if (test.Labels is null) throw new ArgumentException($"{test.Source} has no labels.");
        net.Eval();
        using var noGrad = new NoGrad();
        int correct = 0;
        for (int start = 0; start < test.Count; start += batch)
        {
            using var scope = DisposeScope.Enter();
            int n = Math.Min(batch, test.Count - start);
            var indices = Enumerable.Range(start, n).Select(i => (long)i).ToArray();
            var (images, labels) = test.Batch(indices, []);
            var predicted = net.Forward(images).Logits.ArgMax(1).ToLongArray();
            var truth = labels!.ToLongArray();
            for (int i = 0; i < n; i++) if (predicted[i] == truth[i]) correct++;
        }
        return correct / (double)test.Count;
    }
}
