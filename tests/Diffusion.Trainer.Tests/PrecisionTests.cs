using Diffusion.Trainer.Data;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

/// <summary>
/// Mixed precision (--precision bf16) against the float32 network it approximates: the same output and gradients up
/// to bfloat16's rounding (8 significant bits), float32 weights and gradients, and a run that trains and resumes.
/// </summary>
[Collection(DefaultGenerator.Name)]
public class PrecisionTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_bf16_forward_and_backward_follow_the_float32_ones_to_bfloat16_rounding(bool scaleShift)
    {
        var config = new UNetConfig
        {
            BaseChannels = 16, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [14], NumClasses = 3,
            Dropout = 0, ScaleShift = scaleShift,
        };
        random.manual_seed(4);
        using var net = new UNet(config);
        using var g = new Generator(4);
        ExportParityTests.RandomizeAllWeights(net, g);
        using var scope = NewDisposeScope();
        var x = randn([4, 1, 28, 28], generator: g);
        var t = tensor(new float[] { 999, 500, 20, 1 });
        var labels = tensor(new long[] { 0, 1, 2, 3 });

        (Tensor Output, Tensor Gradient) Pass(ScalarType type)
        {
            net.ComputeType = type;
            net.zero_grad();
            var y = net.forward(x, t, labels);
            y.square().mean().backward();
            // gradients land on the float32 weights
            Assert.All(net.parameters(), p => Assert.Equal(ScalarType.Float32, p.grad!.dtype));
            return (y.detach(), cat(net.parameters().Select(p => p.grad!.flatten()).ToArray()).clone());
        }
        var (y32, g32) = Pass(ScalarType.Float32);
        var (y16, g16) = Pass(ScalarType.BFloat16);

        Assert.Equal(ScalarType.Float32, y16.dtype);
        double RelativeError(Tensor a, Tensor b) => (a - b).norm().item<float>() / b.norm().item<float>();
        double output = RelativeError(y16, y32), gradient = RelativeError(g16, g32);
        Assert.True(output is > 1e-4 and < 0.02,
            $"output relative error {output}: bfloat16 should round (> 1e-4) and no more (< 0.02)");
        Assert.True(gradient is > 1e-4 and < 0.05, $"gradient relative error {gradient}");
        Assert.Throws<ArgumentException>(() => net.ComputeType = ScalarType.Float16);
    }

    [Fact]
    public void A_bf16_run_lowers_the_loss_keeps_float32_state_and_resumes_in_either_precision()
    {
        var data = Datasets.Open("fashion-mnist").Take(512);
        var folder = TestFolders.Reserve("precision-tests");
        var config = new TrainConfig
        {
            Steps = 150, Batch = 16, LearningRate = 1e-3, WarmupSteps = 10, SampleEvery = 0, CheckpointEvery = 1000,
            Seed = 5, Precision = Precision.BFloat16,
            Net = new UNetConfig
            {
                BaseChannels = 16, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [14], Dropout = 0,
            },
        };
        using (var run = TrainingRun.Start(config, folder, data))
        {
            Assert.Equal(ScalarType.BFloat16, run.Net.ComputeType);
            run.Run();
            double first = run.Losses.Take(20).Average(l => l.Loss),
                last = run.Losses.TakeLast(30).Average(l => l.Loss);
            Assert.True(last < 0.5 * first, $"loss {first:0.000} → {last:0.000}");
            Assert.All(run.Net.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        }
        Assert.Equal(Precision.BFloat16, Checkpoint.ReadInfo(TrainingRun.CheckpointPath(folder)).Config.Precision);
        var back = new ResumeOptions { Steps = 152, Precision = Precision.Float32 };
        Assert.Equal("Steps 152, Precision fp32", back.ToString());
        using (var resumed = TrainingRun.Resume(folder, back, data))
        {
            Assert.Equal(ScalarType.Float32, resumed.Net.ComputeType);
            resumed.Run();
            Assert.Equal(152, resumed.Step);
        }
        Assert.Equal(Precision.Float32, Checkpoint.ReadInfo(TrainingRun.CheckpointPath(folder)).Config.Precision);
        var hostile = Assert.Throws<DiffusionArgumentException>(() =>
            TrainingRun.Start(config with { Precision = (Precision)7 }, TestFolders.Reserve("precision-tests"), data));
        Assert.Equal(("Precision", "7: expected fp32 or bf16."), (hostile.Parameter, hostile.Problem));
    }
}
