using Diffusion.Trainer.Data;
using Diffusion.Trainer.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Training;

/// <summary>
/// Trains a <see cref="Classifier"/> with cross-entropy and TorchSharp's AdamW (cosine decay), and measures its
/// accuracy.
/// </summary>
public static class ClassifierTraining
{
    /// <summary>
    /// Trains for <paramref name="epochs"/> passes over shuffled, flipped <paramref name="train"/>; reports (epoch,
    /// mean loss).
    /// </summary>
    public static Classifier Train(ImageDataset train, int epochs, int batch, double lr, ulong seed,
        IProgress<(int Epoch, int Step, double Loss)>? progress = null)
    {
        if (train.Labels is null)
            throw new ArgumentException($"{train.Source} has no labels to train a classifier on.");
        random.manual_seed((long)seed);
        using var g = new Generator(seed);
        var net = new Classifier(train.Channels, train.Height, train.NumClasses);
        using var optimizer = optim.AdamW(net.parameters(), lr, weight_decay: 1e-4);
        int stepsPerEpoch = train.Count / batch, total = epochs * stepsPerEpoch, step = 0;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            long[] order;
            using (var shuffle = randperm(train.Count, generator: g)) order = shuffle.data<long>().ToArray();
            for (int s = 0; s < stepsPerEpoch; s++, step++)
            {
                using var scope = NewDisposeScope();
                var indices = order.AsSpan(s * batch, batch);
                var flips = rand([batch], generator: g).data<float>().ToArray().Select(u => u < 0.5f).ToArray();
                var (images, labels) = train.Batch(indices, flips);
                optimizer.zero_grad();
                Tensor loss;
                // see TrainingRun.TrainStep
                using (var forward = NewDisposeScope()) loss = forward.MoveToOuter(nn.functional.cross_entropy(net.forward(images).Logits, labels!));
                loss.backward();
                // cosine decay
                foreach (var group in optimizer.ParamGroups)
                    group.LearningRate = lr * 0.5 * (1 + Math.Cos(Math.PI * step / total));
                optimizer.step();
                progress?.Report((epoch, step, loss.item<float>()));
            }
        }
        net.eval();
        return net;
    }

    /// <summary>Fraction of <paramref name="test"/> classified correctly.</summary>
    public static double Accuracy(Classifier net, ImageDataset test, int batch = 500)
    {
        if (test.Labels is null) throw new ArgumentException($"{test.Source} has no labels.");
        net.eval();
        using var noGrad = no_grad();
        int correct = 0;
        for (int start = 0; start < test.Count; start += batch)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(batch, test.Count - start);
            var indices = Enumerable.Range(start, n).Select(i => (long)i).ToArray();
            var (images, labels) = test.Batch(indices, []);
            var predicted = net.forward(images).Logits.argmax(1).data<long>().ToArray();
            var truth = labels!.data<long>().ToArray();
            for (int i = 0; i < n; i++) if (predicted[i] == truth[i]) correct++;
        }
        return correct / (double)test.Count;
    }
}
