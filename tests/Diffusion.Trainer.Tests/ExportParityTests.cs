using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Nn;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

/// <summary>The same random inputs through TorchSharp and through ONNX Runtime must agree to max |Δ| ≤ 1e−4.</summary>
[Collection(DefaultGenerator.Name)]
public class ExportParityTests
{
    public static TheoryData<int, bool, bool, bool> Cases => new()
    {
        { 1, false, false, false }, { 5, false, false, false }, { 1, true, false, false }, { 5, true, false, false },
        { 1, false, true, false }, { 5, true, true, false }, { 5, true, true, true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Onnx_export_matches_torchsharp(int batch, bool conditional, bool scaleShift, bool learnSigma)
    {
        var config = new UNetConfig
        {
            BaseChannels = 16, ChannelMults = [1, 2, 2], ResBlocks = 1, AttentionResolutions = [7],
            NumClasses = conditional ? 3 : 0, Dropout = 0.3,
            ScaleShift = scaleShift, LearnSigma = learnSigma,
        };
        random.manual_seed(3);
        using var net = new UNet(config);
        using var g = new Generator(3);
        RandomizeAllWeights(net, g); // zero-initialised output convs would hide errors in what feeds them
        net.eval();
        using var scope = NewDisposeScope();
        var x = randn([batch, 1, 28, 28], generator: g);
        float[] times = [999f, 0f, 17.25f, 500.5f, 3f];
        var t = tensor(times[..batch]);
        long[] labelValues = [0, 3, 2, 1, 3];
        var labels = conditional ? tensor(labelValues[..batch]) : null;
        float[] expected;
        using (no_grad()) expected = net.forward(x, t, labels).data<float>().ToArray();

        var onnx = UNetExporter.ToOnnx(net, new DiffusionConfig());
        using var session = new InferenceSession(onnx);
        var inputs = new Dictionary<string, OrtValue>
        {
            ["sample"] = OrtValue.CreateTensorValueFromMemory(x.data<float>().ToArray(), [batch, 1, 28, 28]),
            ["timestep"] = OrtValue.CreateTensorValueFromMemory(times[..batch], [batch]),
        };
        if (conditional) inputs["class_labels"] = OrtValue.CreateTensorValueFromMemory(labelValues[..batch], [batch]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, inputs, ["model_output"]);
        var actual = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        foreach (var v in inputs.Values) v.Dispose();
        Assert.Equal(expected.Length, actual.Length);
        Assert.Equal(batch * config.OutChannels * 28 * 28, actual.Length);
        // the runtime reads a learned variance's export as such: 2C channels, variance_type learned_range
        using (var model = DiffusionModel.Load(onnx, "unet.onnx"))
            Assert.Equal((learnSigma, config.OutChannels), (model.Config.LearnsVariance, model.OutputChannels));
        double worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= 1e-4, $"max |Δ| = {worst}");
        Assert.True(expected.Select(Math.Abs).Max() > 0.01, "the output should not be trivially zero");
    }

    [Fact]
    public void Initializers_carry_the_modules_parameter_names()
    {
        random.manual_seed(0);
        using var net = new UNet(new UNetConfig
        {
            BaseChannels = 8, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [14], NumClasses = 2,
        });
        var model = Onnx.ModelProto.Parser.ParseFrom(UNetExporter.ToOnnx(net, new DiffusionConfig()));
        var initializers = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
        foreach (var (name, _) in net.named_parameters())
            Assert.True(initializers.Contains(name) || initializers.Contains(name.Replace(".weight", ".weight_t")),
                $"{name} is not an initializer");
    }

    [Fact]
    public void A_new_unet_starts_like_pytorchs_norm_identity_and_zero_output()
    {
        random.manual_seed(0);
        using var net = new UNet(new UNetConfig
        {
            BaseChannels = 8, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [14],
        });
        foreach (var (name, p) in net.named_parameters())
        {
            var values = p.data<float>().ToArray();
            if (name.Contains("norm") && name.EndsWith(".weight")) Assert.All(values, v => Assert.Equal(1f, v));
            else if (name.Contains("norm") && name.EndsWith(".bias")) Assert.All(values, v => Assert.Equal(0f, v));
            else if (name.StartsWith("conv_out.")) Assert.All(values, v => Assert.Equal(0f, v));
            else Assert.All(values, v => Assert.True(float.IsFinite(v) && Math.Abs(v) < 5, $"{name}: {v}"));
        }
    }

    /// <summary>Adds N(0, 0.05²) to every weight, so that no layer is the identity or zero.</summary>
    internal static void RandomizeAllWeights(nn.Module net, Generator g)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var p in net.parameters()) p.add_(randn(p.shape, generator: g), alpha: 0.05);
    }
}
