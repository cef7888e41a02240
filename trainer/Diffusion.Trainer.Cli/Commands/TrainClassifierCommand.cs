using System.CommandLine;
using System.Diagnostics;
using Diffusion.Runtime.Imaging;
using Diffusion.Trainer.Data;
using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Commands;

/// <summary>
/// <c>train-classifier</c>: trains the feature classifier of the quality metric and exports it to ONNX (outputs logits,
/// features).
/// </summary>
public static class TrainClassifierCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(TextWriter output, TextWriter error)
    {
        var data = new Option<string>("--data")
        {
            DefaultValueFactory = _ => "fashion-mnist", Description = "Labelled training data.",
        };
        var test = new Option<string>("--test")
        {
            DefaultValueFactory = _ => "fashion-mnist-test", Description = "Labelled test data for the accuracy.",
        };
        var outFile = new Option<string>("--out") { Required = true, Description = "The classifier .onnx to write." };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 4 };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 128 };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 2e-3 };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads") { DefaultValueFactory = _ => 0 };
        var command = new Command("train-classifier",
            "Train the feature classifier used by `eval` (Fréchet distance, class accuracy).")
        {
            data, test, outFile, epochs, batch, lr, seed, threads,
        };
        command.SetAction((p, _) => Program.Guard(error, async () =>
        {
            int torchThreads = TorchSetup.SetThreads(p.GetValue(threads));
            var train = Datasets.Open(p.GetValue(data)!);
            var testSet = Datasets.Open(p.GetValue(test)!);
            var watch = Stopwatch.StartNew();
            int every = Math.Max(1, train.Count / p.GetValue(batch) / 4);
            using var net = ClassifierTraining.Train(train, p.GetValue(epochs), p.GetValue(batch), p.GetValue(lr),
                p.GetValue(seed),
                new SyncProgress(r =>
                {
                    if (r.Step % every == 0)
                        output.WriteLine($"epoch {r.Epoch + 1} step {r.Step} loss {r.Loss:0.0000}");
                }));
            double accuracy = ClassifierTraining.Accuracy(net, testSet);
            var bytes = net.ToOnnx();
            AtomicFile.Write(p.GetValue(outFile)!, s => s.Write(bytes));
            await output.WriteLineAsync($"test accuracy {accuracy:P2} on {testSet.Count} images " +
                $"({testSet.Source}); {watch.Elapsed.TotalMinutes:0.0} min; wrote {p.GetValue(outFile)}");
            return 0;
        }));
        return command;
    }

    private sealed class SyncProgress(Action<(int Epoch, int Step, double Loss)> report)
        : IProgress<(int Epoch, int Step, double Loss)>
    {
        public void Report((int Epoch, int Step, double Loss) value) => report(value);
    }
}
