using Diffusion.Runtime;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Data;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Nn;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

/// <summary>
/// <c>export --precision int8</c>: the QDQ graph runs on ONNX Runtime's integer kernels, stays close to float32 on
/// inputs it was not calibrated on, and refuses what it cannot quantize.
/// </summary>
[Collection(DefaultGenerator.Name)]
public class Int8QuantizerTests
{
    private static readonly CalibrationOptions Options = new()
    {
        Images = 16, Timesteps = 5, Batch = 16, VerificationImages = 8, Seed = 4,
    };

    /// <summary>A small class-conditional UNet with random weights, exported to float32 ONNX.</summary>
    private static (byte[] Onnx, int Convolutions) SmallModel()
    {
        random.manual_seed(5);
        using var net = new UNet(new UNetConfig
        {
            BaseChannels = 16, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [14], NumClasses = 3,
        });
        using var g = new Generator(5);
        ExportParityTests.RandomizeAllWeights(net, g);
        net.eval();
        var onnx = UNetExporter.ToOnnx(net, new DiffusionConfig());
        int convs = Onnx.ModelProto.Parser.ParseFrom(onnx).Graph.Node.Count(n => n.OpType == "Conv");
        return (onnx, convs);
    }

    /// <summary>Smooth images with labels: blobs whose place and size follow the class, plus a little noise.</summary>
    private static ImageDataset Blobs(int count, int size = 28)
    {
        var rng = new Random(9);
        var pixels = new byte[count * size * size];
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = i % 3;
            double cx = 8 + 6 * labels[i], cy = 10 + rng.Next(8), r = 4 + labels[i] * 2;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                {
                    double d = Math.Sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
                    pixels[i * size * size + y * size + x] = (byte)Math.Clamp(255 * Math.Exp(-d * d / (2 * r * r))
                        + rng.Next(-10, 10), 0, 255);
                }
        }
        return new ImageDataset(pixels, labels, count, 1, size, size, ["a", "b", "c"], "blobs");
    }

    private static float[] Run(byte[] model, float[] x, float[] t, long[] labels, string? optimizedPath = null)
    {
        using var options = new SessionOptions();
        if (optimizedPath is not null)
        {
            options.GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_EXTENDED;
            options.OptimizedModelFilePath = optimizedPath;
        }
        using var session = new InferenceSession(model, options);
        int b = t.Length;
        using var sample = OrtValue.CreateTensorValueFromMemory(x, [b, 1, 28, 28]);
        using var timestep = OrtValue.CreateTensorValueFromMemory(t, [b]);
        using var classes = OrtValue.CreateTensorValueFromMemory(labels, [b]);
        using var run = new RunOptions();
        using var results = session.Run(run,
            new Dictionary<string, OrtValue> { ["sample"] = sample, ["timestep"] = timestep, ["class_labels"] = classes },
            ["model_output"]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static double RelativeError(float[] got, float[] want) =>
        Math.Sqrt(got.Zip(want, (a, b) => (double)(a - b) * (a - b)).Sum() / want.Sum(v => (double)v * v));

    [Fact]
    public void Int8_export_runs_as_QLinearConv_and_tracks_float32_off_its_calibration_data()
    {
        var (fp32, convs) = SmallModel();
        var (int8, report) = Int8Quantizer.Quantize(fp32, "small.onnx", Blobs(40), Options);

        // Every convolution but the first and the last, fused by ONNX Runtime into its integer kernel.
        Assert.Equal(convs - 2, report.Convolutions);
        var optimized = Path.Combine(Path.GetTempPath(), $"int8-optimized-{Guid.NewGuid():N}.onnx");
        // An input the calibration never saw: x_t of other noise, timesteps between the calibration's.
        var rng = new Random(1);
        var x = Enumerable.Range(0, 3 * 28 * 28).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] t = [100f, 420f, 870f];
        long[] labels = [0, 2, 3]; // 3 = the null label
        var want = Run(fp32, x, t, labels);
        float[] got;
        try
        {
            got = Run(int8, x, t, labels, optimized);
            var ops = Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized)).Graph.Node
                .GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(report.Convolutions, ops.GetValueOrDefault("QLinearConv"));
            Assert.Equal(2, ops.GetValueOrDefault("Conv") + ops.GetValueOrDefault("FusedConv"));
        }
        finally { File.Delete(optimized); }

        double error = RelativeError(got, want);
        Assert.True(error is > 1e-4 and < 0.1, $"relative RMS error {error}");
        // The report's own measure, on held-out images, lies in the same range, and x̂₀'s error grows with σ/α.
        Assert.True(report.RelativeError is > 1e-4 and < 0.1, report.ToString());
        Assert.Equal(Options.Timesteps, report.PerTimestep.Count);
        Assert.Equal([0, 250, 500, 749, 999], report.PerTimestep.Select(p => p.Timestep));
        Assert.True(report.PerTimestep[0].SampleError < report.PerTimestep[^1].SampleError, report.ToString());

        // The runtime loads it as the same model: metadata kept, weights a quarter of the size.
        using var model = DiffusionModel.Load(int8, "int8.onnx");
        using var reference = DiffusionModel.Load(fp32, "fp32.onnx");
        Assert.Equal((reference.Config.ToJson(), reference.NumClasses, reference.ImageSize),
            (model.Config.ToJson(), model.NumClasses, model.ImageSize));
        Assert.True(int8.Length < fp32.Length / 2, $"{int8.Length} vs {fp32.Length} bytes");
    }

    [Fact]
    public void Min_max_ranges_lose_more_than_least_squares_ones()
    {
        var (fp32, _) = SmallModel();
        var data = Blobs(40);
        var mse = Int8Quantizer.Quantize(fp32, "small.onnx", data, Options).Report;
        var minMax = Int8Quantizer.Quantize(fp32, "small.onnx", data, Options with { Ranges = RangeMethod.MinMax })
            .Report;
        Assert.True(mse.RelativeError < minMax.RelativeError, $"{mse.RelativeError} vs {minMax.RelativeError}");
    }

    [Fact]
    public void What_cannot_be_quantized_is_refused_with_one_line()
    {
        var (fp32, _) = SmallModel();
        var data = Blobs(8);
        var options = Options with { Images = 4, VerificationImages = 2 };
        string Refusal(byte[] model, ImageDataset d, CalibrationOptions? o = null) =>
            Assert.ThrowsAny<DiffusionException>(() => Int8Quantizer.Quantize(model, "m.onnx", d, o ?? options))
                .Message;

        var int8 = Int8Quantizer.Quantize(fp32, "m.onnx", data, options).Model;
        Assert.Equal("m.onnx: the model is quantized already; give its float32 file.", Refusal(int8, data));
        Assert.StartsWith("m.onnx: not an ONNX model", Refusal([1, 2, 3, 4, 5, 6, 7, 8], data));
        var bare = Onnx.ModelProto.Parser.ParseFrom(fp32);
        bare.MetadataProps.Clear();
        Assert.StartsWith("m.onnx: no diffusion.config metadata", Refusal(bare.ToByteArray(), data));
        Assert.Equal("blobs: calibration images are 1×14×14; m.onnx takes 1×28×28.", Refusal(fp32, Blobs(8, 14)));
        Assert.Contains("--calibration-images", Refusal(fp32, data, options with { Images = 0 }));
        Assert.Contains("--calibration-images", Refusal(fp32, data, options with { Timesteps = 1 }));
    }

    [Fact]
    public void Least_squares_ranges_clip_long_tails_and_keep_dense_ranges()
    {
        // Laplace values, as heavy-tailed as activations after SiLU: min/max spends the grid on the rare far tail.
        var rng = new Random(3);
        var data = Enumerable.Range(0, 200_000)
            .Select(_ => (float)(-Math.Log(1 - rng.NextDouble()) * (rng.Next(2) * 2 - 1))).ToArray();
        var histogram = new ActivationHistogram(data.Min(), data.Max());
        histogram.Add(data);
        Assert.Equal(data.Length, histogram.Count);
        var (low, high, predicted) = histogram.BestRange();
        Assert.True(high < 0.9 * data.Max() && low > 0.9 * data.Min(), $"[{low}, {high}] of [{data.Min()}, {data.Max()}]");
        // Measured independently: quantize the values on both grids and compare the errors.
        double Mse(float a, float b)
        {
            double step = (b - a) / 255.0, zero = Math.Round(-a / step);
            return data.Average(v =>
            {
                double q = Math.Clamp(Math.Round(v / step) + zero, 0, 255);
                double d = (q - zero) * step - v;
                return d * d;
            });
        }
        double chosen = Mse(low, high), full = Mse(data.Min(), data.Max());
        Assert.True(chosen < 0.9 * full, $"least squares {chosen} vs min/max {full}");
        Assert.InRange(predicted, chosen * 0.7, chosen * 1.3);

        // Uniform values gain nothing from clipping: the range stays the data's (within a few bins).
        var uniform = Enumerable.Range(0, 100_000).Select(_ => (float)rng.NextDouble() * 4 - 1).ToArray();
        var flat = new ActivationHistogram(uniform.Min(), uniform.Max());
        flat.Add(uniform);
        var (a, b, _) = flat.BestRange();
        Assert.InRange(a, -1.02, -0.97);
        Assert.InRange(b, 2.95, 3.01);
        // a range that excludes 0 is widened to hold it; a non-interval is refused
        var positive = new ActivationHistogram(2, 5);
        positive.Add([2f, 3f, 5f]);
        Assert.Equal(0, positive.BestRange().Min);
        Assert.Throws<ArgumentException>(() => new ActivationHistogram(1, float.NaN));
        Assert.Throws<ArgumentException>(() => new ActivationHistogram(3, 2));
    }
}
