using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Data;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Training;
using TorchSharp;

namespace Diffusion.Trainer.Tests;

/// <summary>Short real training runs on a slice of Fashion-MNIST with a tiny UNet.</summary>
[Collection(DefaultGenerator.Name)]
public class TrainingTests
{
    private static readonly Lazy<ImageDataset> Slice = new(() => Datasets.Open("fashion-mnist").Take(512));

    private static TrainConfig Tiny(int steps, double dropout = 0.0) => new()
    {
        Steps = steps, Batch = 16, LearningRate = 1e-3, WarmupSteps = 10, SampleEvery = 0, CheckpointEvery = 1000,
            Seed = 5,
        Net = new UNetConfig
        {
            BaseChannels = 16, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [14], Dropout = dropout,
        },
    };

    private static string Folder() => TestFolders.Reserve("trainer-tests");

    /// <summary>
    /// One run of 400 steps, shared by the tests that need hundreds of steps (each of them once took its own):
    /// its losses, and the resident memory after step 100 and after step 400.
    /// </summary>
    private static readonly Lazy<(double[] Losses, double EarlyMiB, double LateMiB)> Long = new(() =>
    {
        using var run = TrainingRun.Start(Tiny(400), Folder(), Slice.Value);
        for (int i = 0; i < 100; i++) run.TrainStep();
        GC.Collect();
        double early = ProcessMemory.ResidentMiB();
        for (int i = 0; i < 300; i++) run.TrainStep();
        GC.Collect();
        double late = ProcessMemory.ResidentMiB();
        return (run.Losses.Select(l => l.Loss).ToArray(), early, late);
    });

    [Fact]
    public void A_few_hundred_steps_lower_the_loss_clearly()
    {
        var losses = Long.Value.Losses;
        Assert.Equal(400, losses.Length);
        double first = losses.Take(20).Average(), last = losses.TakeLast(50).Average();
        Assert.True(last < 0.5 * first, $"loss {first:0.000} → {last:0.000}");
        Assert.InRange(first, 0.5, 3); // an untrained ε-predictor scores about Var(ε) = 1
    }

    [Fact]
    public void The_learning_rate_warms_up_holds_and_cools_down_to_the_last_step()
    {
        var c = new TrainConfig { Steps = 100, LearningRate = 1e-3, WarmupSteps = 10, DecaySteps = 20 };
        double Lr(int step) => TrainingRun.LearningRate(c, step);
        Assert.Equal(0.5e-3, Lr(5), 12);            // warm-up
        Assert.Equal(1e-3, Lr(10), 12);
        Assert.Equal(1e-3, Lr(81), 12);             // the last constant step
        Assert.Equal(1e-3 * 19 / 20, Lr(82), 12);   // cool-down: linear …
        Assert.Equal(1e-3 / 20, Lr(100), 12);       // … to 1/20 of the peak at the last step
        Assert.Equal(1e-3, TrainingRun.LearningRate(c with { DecaySteps = 0 }, 100), 12);
        // a cool-down longer than the warm-up caps it
        Assert.Equal(0.1e-3, TrainingRun.LearningRate(c with { DecaySteps = 100 }, 91), 12);
    }

    [Fact]
    public void Resume_continues_as_if_never_stopped()
    {
        var straight = Folder();
        using (var run = TrainingRun.Start(Tiny(24, dropout: 0.2), straight, Slice.Value)) run.Run();
        var expected = File.ReadAllLines(Path.Combine(straight, "loss.csv"));

        var stopped = Folder();
        using (var run = TrainingRun.Start(Tiny(12, dropout: 0.2), stopped, Slice.Value)) run.Run();
        using (var run = TrainingRun.Resume(stopped, new ResumeOptions { Steps = 24 }, data: Slice.Value)) run.Run();
        var resumed = File.ReadAllLines(Path.Combine(stopped, "loss.csv"));

        Assert.Equal(expected.Length, resumed.Length);
        for (int i = 1; i < expected.Length; i++)
        {
            double a = double.Parse(expected[i].Split(',')[1]), b = double.Parse(resumed[i].Split(',')[1]);
            Assert.True(Math.Abs(a - b) <= 1e-5 * Math.Max(1, Math.Abs(a)), $"line {i}: {a} vs {b}");
        }
    }

    [Fact]
    public void Resume_may_change_the_learning_rate_ema_and_dropout_from_there_on()
    {
        var folder = Folder();
        using (var run = TrainingRun.Start(Tiny(12, dropout: 0.2), folder, Slice.Value)) run.Run();
        using var resumed = TrainingRun.Resume(folder, new ResumeOptions
        {
            Steps = 16, LearningRate = 5e-3, EmaDecay = 0, Dropout = 0,
        }, data: Slice.Value);
        Assert.Equal(12, resumed.Step);
        // the average of 12 steps at 0.999
        Assert.NotEqual(resumed.ExportOnnx(ema: false), resumed.ExportOnnx(ema: true));
        Assert.Equal(5e-3, resumed.LearningRateAt(13), 12);
        resumed.TrainStep();
        // decay 0: the average is the weights
        Assert.Equal(resumed.ExportOnnx(ema: false), resumed.ExportOnnx(ema: true));

        // Dropout 0: the network in training mode gives the same output twice (at 0.2 it would not).
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(2, 1, 28, 28);
        var t = torch.tensor(new float[] { 10, 500 });
        var labels = torch.tensor(new long[] { 1, 2 });
        resumed.Net.train();
        Assert.True(resumed.Net.forward(x, t, labels).eq(resumed.Net.forward(x, t, labels)).all().item<bool>());
    }

    [Fact]
    public void Flips_are_off_unless_asked_for_and_a_resumed_run_may_turn_them_on()
    {
        Assert.False(new TrainConfig().Flip);
        var folder = Folder();
        using (var run = TrainingRun.Start(Tiny(8), folder, Slice.Value)) run.Run();
        double[] LossesAfterResume(ResumeOptions options)
        {
            using var run = TrainingRun.Resume(folder, options, data: Slice.Value);
            for (int i = 0; i < 4; i++) run.TrainStep();
            return run.Losses.TakeLast(4).Select(l => l.Loss).ToArray();
        }
        var flipped = new ResumeOptions { Steps = 12, Flip = true };
        Assert.Equal([("Steps", "12"), ("Flip", "true")], flipped.Changed());
        Assert.True(flipped.ApplyTo(Tiny(8)).Flip);
        double[] plain = LossesAfterResume(new ResumeOptions { Steps = 12 }),
            again = LossesAfterResume(new ResumeOptions { Steps = 12, Flip = false });
        Assert.Equal(plain, again);                          // the same draws from the restored generators …
        Assert.NotEqual(plain, LossesAfterResume(flipped));  // … on mirrored images
    }

    [Fact]
    public void A_second_run_on_the_same_folder_is_refused_while_the_first_lives()
    {
        var folder = Folder();
        using (var first = TrainingRun.Start(Tiny(4), folder, Slice.Value))
        {
            var e = Assert.Throws<DiffusionException>(() => TrainingRun.Start(Tiny(4), folder, Slice.Value));
            Assert.Contains("is in use by another training run", e.Message);
            Assert.DoesNotContain('\n', e.Message);
            first.Run();
            Assert.Throws<DiffusionException>(() => TrainingRun.Resume(folder, data: Slice.Value));
        }
        using var resumed = TrainingRun.Resume(folder, new ResumeOptions { Steps = 6 }, data: Slice.Value);
        resumed.Run();
        Assert.Equal(6, resumed.Step);
    }

    [Fact]
    public void A_loss_log_cut_mid_line_is_repaired_before_a_resume_appends()
    {
        var folder = Folder();
        using (var run = TrainingRun.Start(Tiny(4) with { CheckpointEvery = 2 }, folder, Slice.Value)) run.Run();
        var log = Path.Combine(folder, "loss.csv");
        var text = File.ReadAllText(log);
        File.WriteAllText(log, text[..^6]); // a kill in the middle of the last line
        using (var run = TrainingRun.Resume(folder, new ResumeOptions { Steps = 6 }, data: Slice.Value)) run.Run();
        var lines = File.ReadAllLines(log);
        Assert.Equal("step,loss", lines[0]);
        Assert.All(lines.Skip(1), l => Assert.Matches(@"^\d+,-?[0-9.Ee+-]+$", l));
        var steps = lines.Skip(1).Select(l => int.Parse(l.Split(',')[0])).ToArray();
        Assert.Equal(steps.Order().Distinct(), steps);
        Assert.Equal(6, steps[^1]);
    }

    [Fact]
    public void Resident_memory_stays_flat_over_hundreds_of_steps()
    {
        var (_, early, late) = Long.Value;
        Assert.True(late - early < 40, $"resident memory grew from {early:0} MiB to {late:0} MiB over 300 steps");
    }

    [Fact]
    public void The_trained_model_exports_and_samples_through_the_runtime()
    {
        var folder = Folder();
        using var run = TrainingRun.Start(Tiny(30), folder, Slice.Value);
        run.Run();
        var grid = run.WriteSamples();
        Assert.True(File.Exists(grid));
        using var model = DiffusionModel.Load(Path.Combine(folder, "model.onnx"));
        Assert.Equal((1, 28, 28, 10), (model.Channels, model.Height, model.Width, model.NumClasses));
        Assert.Equal("sneaker", model.Config.ClassNames![7]);
        var images = new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "ddim", Steps = 10, Count = 4, ClassLabels = [7], Guidance = 2,
        });
        Assert.All(images.Images, v => Assert.True(float.IsFinite(v)));

        // The exported EMA model equals what `export --ema` writes from the checkpoint.
        var (net, config) = TrainingRun.LoadNetwork(TrainingRun.CheckpointPath(folder), ema: true);
        using (net) Assert.Equal(run.ExportOnnx(), Export.UNetExporter.ToOnnx(net, config));
    }

    [Fact]
    public void Corrupt_data_files_name_the_file_and_offset()
    {
        var dir = Folder();
        Directory.CreateDirectory(dir);
        var truncated = Path.Combine(dir, "train-images-idx3-ubyte");
        File.WriteAllBytes(truncated, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() => Datasets.Open(truncated));
        Assert.Contains(truncated, e.Message);
        Assert.Contains("offset 16", e.Message);
        var badMagic = Path.Combine(dir, "bad.idx");
        File.WriteAllBytes(badMagic, [1, 2, 3, 4, 5]);
        Assert.Contains("bad magic", Assert.Throws<InvalidDataException>(() => Datasets.Open(badMagic)).Message);
        var cifar = Path.Combine(dir, "data_batch_1.bin");
        File.WriteAllBytes(cifar, new byte[3073 + 100]);
        Assert.Contains("truncated", Assert.Throws<DiffusionException>(() => Datasets.Open(cifar)).Message);
        Assert.Equal("Data",
            Assert.Throws<DiffusionException>(() => Datasets.Open(Path.Combine(dir, "missing"))).Parameter);
    }

    [Fact]
    public void Fashion_mnist_loads_with_its_ten_classes()
    {
        var data = Datasets.Open("fashion-mnist-test");
        Assert.Equal((10000, 1, 28, 28, 10), (data.Count, data.Channels, data.Height, data.Width, data.NumClasses));
        Assert.Equal(1000, data.Labels!.Count(l => l == 7));
    }

    [Fact]
    public void Checkpoints_append_to_loss_csv_without_reading_it_back()
    {
        // loss.csv grows by the steps since the last checkpoint; it is never re-read (that was quadratic in the run's
        // length), so a line edited by hand in between is neither parsed nor rewritten.
        var folder = Folder();
        using var run = TrainingRun.Start(Tiny(3) with { CheckpointEvery = 1 }, folder, Slice.Value);
        var log = Path.Combine(folder, "loss.csv");
        run.TrainStep();
        run.SaveCheckpoint(run.Losses[^1].Loss);
        File.AppendAllText(log, "edited by hand\n");
        run.TrainStep();
        run.SaveCheckpoint(run.Losses[^1].Loss);
        run.TrainStep();
        run.SaveCheckpoint(run.Losses[^1].Loss);
        var lines = File.ReadAllLines(log);
        Assert.Equal(["step,loss", $"1,{run.Losses[0].Loss:R}", "edited by hand", $"2,{run.Losses[1].Loss:R}",
            $"3,{run.Losses[2].Loss:R}"], lines);
    }
}
