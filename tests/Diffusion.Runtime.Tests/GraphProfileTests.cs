using Diffusion.Evaluation.Benchmark;
using Diffusion.OnnxGraph;
using Diffusion.Runtime.Onnx;
using Microsoft.ML.OnnxRuntime;
using Xunit;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// bench-runtime's GFLOP/s stand on two measurements: the graph's multiply-accumulates read from ONNX Runtime's own
/// profile, and the CPU's FMA peak. The counts are checked against hand-counted graphs run through ONNX Runtime.
/// </summary>
public sealed class GraphProfileTests
{
    [Theory]
    // a 3×3 conv 3 → 4 channels on 8×8: every output element (4·8·8) does 3·3·3
    [InlineData("Conv", new long[] { 1, 3, 8, 8 }, new long[] { 4, 3, 3, 3 }, new long[] { 1, 4, 8, 8 }, 6912)]
    // grouped (depthwise) conv: the weight's second axis is C_in / groups
    [InlineData("FusedConv", new long[] { 2, 4, 8, 8 }, new long[] { 4, 1, 3, 3 }, new long[] { 2, 4, 8, 8 }, 4608)]
    // [2, 5, 7]·[7, 3]: K = 7 for each of 2·5·3 outputs
    [InlineData("MatMul", new long[] { 2, 5, 7 }, new long[] { 7, 3 }, new long[] { 2, 5, 3 }, 210)]
    // the same product with A stored transposed ([2, 7, 5], transA): K is still 7
    [InlineData("FusedMatMul", new long[] { 2, 7, 5 }, new long[] { 7, 3 }, new long[] { 2, 5, 3 }, 210)]
    [InlineData("Gemm", new long[] { 6, 10 }, new long[] { 4, 10 }, new long[] { 6, 4 }, 240)]
    [InlineData("Add", new long[] { 6, 10 }, new long[] { 6, 10 }, new long[] { 6, 10 }, 0)]
    public void Multiply_accumulates_follow_from_the_shapes(string op, long[] a, long[] b, long[] y, long macs) =>
        Assert.Equal(macs, GraphProfile.MacsOf(op, [a, b], [y]));

    [Fact]
    public void A_product_whose_prepacked_weight_left_the_profile_is_counted_from_its_first_input()
    {
        Assert.Equal(2 * 4 * 5 * 64, GraphProfile.MacsOf("MatMul", [[2, 4, 64]], [[2, 4, 5]]));
        Assert.Equal(0, GraphProfile.MacsOf("Conv", [[1, 3, 8, 8]], [[1, 4, 8, 8]])); // its kernel size is unknown
    }

    [Fact]
    public void A_profiled_run_counts_the_graphs_own_multiply_accumulates_and_times_every_node()
    {
        // x [2, 3, 8, 8] → Conv 3→4 (3×3, pad 1) → Relu → reshape [2, 4, 64] → ·W [64, 5] → y [2, 4, 5] (the
        // builder names the output through an Identity)
        var g = new GraphBuilder("counted");
        var x = g.Input("x", DataType.Float, 2, 3, 8, 8);
        var conv = g.Node("Conv", [x, g.Initializer("w", Ramp(4 * 3 * 3 * 3), 4, 3, 3, 3)], null,
            Attr.Ints("kernel_shape", 3, 3), Attr.Ints("pads", 1, 1, 1, 1));
        var flat = g.Reshape(g.Node("Relu", [conv]), 2, 4, 64);
        g.Output(g.Node("MatMul", [flat, g.Initializer("m", Ramp(64 * 5), 64, 5)]), "y", DataType.Float, 2, 4, 5);
        var bytes = new ModelBuilder(g).ToBytes();
        long expected = 2 * 4 * 8 * 8 * (3 * 3 * 3) + 2 * 4 * 5 * 64;
        var prefix = Path.Combine(Fixtures.TempFolder(), "profile");
        using var options = new SessionSettings
        {
            ProfilePrefix = prefix, OptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL, IntraOpThreads = 1,
            ConfigEntries = new Dictionary<string, string> { ["session.disable_prepacking"] = "1" },
        }.CreateOptions();
        using var session = new InferenceSession(bytes, options);
        using var input = OrtValue.CreateTensorValueFromMemory(Ramp(2 * 3 * 8 * 8), [2, 3, 8, 8]);
        for (int run = 0; run < 4; run++)
        {
            using var outputs = session.Run(new RunOptions(), ["x"], [input], ["y"]);
        }
        var file = session.EndProfiling();
        Assert.StartsWith(prefix, file);
        var profile = GraphProfile.Read(file, warmupRuns: 1);
        Assert.Equal(expected, profile.Macs);
        Assert.Equal(3, profile.Runs);
        Assert.Equal(["Conv", "Identity", "MatMul", "Relu", "Reshape"], profile.Nodes.Select(n => n.OpType).Order());
        Assert.All(profile.Nodes, n => Assert.True(n.Microseconds >= 0, n.Name));
        Assert.Equal(2 * 4 * 5 * 64, profile.ByOpType().Single(r => r.OpType == "MatMul").Macs);
        var bad = Assert.Throws<FormatException>(() => GraphProfile.Read(file, warmupRuns: 4));
        Assert.Contains("4 runs recorded", bad.Message);
    }

    [Fact]
    public void A_profile_without_node_events_is_refused_with_its_name()
    {
        var path = Path.Combine(Fixtures.TempFolder(), "empty.json");
        File.WriteAllText(path, "[{\"cat\": \"Session\", \"name\": \"model_run\", \"dur\": 5}]");
        var e = Assert.Throws<FormatException>(() => GraphProfile.Read(path, 0));
        Assert.Contains("empty.json", e.Message);
        Assert.Contains("no node kernel events", e.Message);
    }

    [Fact]
    public void The_fma_peak_is_a_finite_positive_rate_compares_threads_with_one_and_refuses_zero_threads()
    {
        // no timing thresholds: only that the measurement measures (finite, positive, names its unit)
        double one = FmaPeak.Measure(1, seconds: 0.02, repeats: 1);
        Assert.True(double.IsFinite(one) && one > 0, $"{one}");
        Assert.Contains("bit", FmaPeak.Unit);
        Assert.Throws<ArgumentOutOfRangeException>(() => FmaPeak.Measure(0));
        Assert.Matches(@"^2 threads reach [0-9]+ GFLOP/s where one alone reaches [0-9]+: [0-9]+\.[0-9]{2}×",
            FmaPeak.Scaling(2, seconds: 0.02));
    }

    private static float[] Ramp(int n) => [.. Enumerable.Range(0, n).Select(i => (i % 7 - 3) / 8f)];
}
