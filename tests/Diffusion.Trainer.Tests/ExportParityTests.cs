using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Torch;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Trainer.Tests;

/// <summary>The same random inputs through libtorch and through ONNX Runtime must agree to max |Δ| ≤ 1e−4.</summary>
public class ExportParityTests
{
    public static TheoryData<int, bool> Cases => new() { { 1, false }, { 5, false }, { 1, true }, { 5, true } };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Onnx_export_matches_libtorch(int batch, bool conditional)
    {
        var config = new UNetConfig { BaseChannels = 16, ChannelMults = [1, 2, 2], ResBlocks = 1, AttentionResolutions = [7], NumClasses = conditional ? 3 : 0, Dropout = 0.3 };
        using var g = new Generator(3);
        using var net = new UNet(config, g);
        RandomizeZeroInitLayers(net, g); // zero-initialised output convs would hide errors in what feeds them
        net.Eval();
        using var scope = DisposeScope.Enter();
        var x = Tensor.Randn([batch, 1, 28, 28], g);
        float[] times = [999f, 0f, 17.25f, 500.5f, 3f];
        var t = Tensor.FromArray(times.AsSpan(0, batch), batch);
        long[] labelValues = [0, 3, 2, 1, 3];
        var labels = conditional ? Tensor.FromArray(labelValues.AsSpan(0, batch), batch) : null;
        float[] expected;
        using (new NoGrad()) expected = net.Forward(x, t, labels).ToFloatArray();

        var onnx = UNetExporter.ToOnnx(net, new DiffusionConfig());
        using var session = new InferenceSession(onnx);
        var inputs = new Dictionary<string, OrtValue>
        {
            ["sample"] = OrtValue.CreateTensorValueFromMemory(x.ToFloatArray(), [batch, 1, 28, 28]),
            ["timestep"] = OrtValue.CreateTensorValueFromMemory(times[..batch], [batch]),
        };
        if (conditional) inputs["class_labels"] = OrtValue.CreateTensorValueFromMemory(labelValues[..batch], [batch]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, inputs, ["model_output"]);
        var actual = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        foreach (var v in inputs.Values) v.Dispose();
        Assert.Equal(expected.Length, actual.Length);
        double worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= 1e-4, $"max |Δ| = {worst}");
        Assert.True(expected.Select(Math.Abs).Max() > 0.01, "the output should not be trivially zero");
    }

    internal static void RandomizeZeroInitLayers(Module net, Generator g)
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = new NoGrad();
        foreach (var (_, p) in net.NamedParameters())
            p.AddInPlace(Tensor.Randn(p.Shape, g), 0.05);
    }
}
