using System.Text.Json;

namespace Diffusion.Evaluation.Benchmark;

/// <summary>
/// One node of a profiled graph: its operator, its median kernel time per run and its multiply-accumulates.
/// </summary>
/// <param name="Name">The node's name in the (optimised) graph.</param>
/// <param name="OpType">Its operator as the session ran it (after fusion: FusedConv, FusedMatMul, …).</param>
/// <param name="Microseconds">Median kernel time over the profiled runs after the warm-up ones.</param>
/// <param name="Macs">Multiply-accumulates of one run (convolutions and matrix products; 0 for every other op).</param>
public sealed record NodeTiming(string Name, string OpType, double Microseconds, long Macs);

/// <summary>
/// ONNX Runtime's profile (the Chrome-trace JSON that <c>EnableProfiling</c> writes) read back per node: where a
/// network call spends its time, by operator type, and how many multiply-accumulates the graph does — counted from
/// the tensor shapes the profile records, so that GFLOP/s come from the graph itself, not from a figure typed in.
/// </summary>
public sealed class GraphProfile
{
    /// <summary>The nodes in the order of their first run.</summary>
    public IReadOnlyList<NodeTiming> Nodes { get; }

    /// <summary>Runs profiled after the warm-up ones (the medians are over these).</summary>
    public int Runs { get; }

    private GraphProfile(IReadOnlyList<NodeTiming> nodes, int runs)
    {
        Nodes = nodes;
        Runs = runs;
    }

    /// <summary>Multiply-accumulates of one run of the whole graph.</summary>
    public long Macs => Nodes.Sum(n => n.Macs);

    /// <summary>Summed median kernel time of one run, ms (the operators alone: no session overhead).</summary>
    public double KernelMs => Nodes.Sum(n => n.Microseconds) / 1000;

    /// <summary>Per operator type: nodes, summed median ms per run and multiply-accumulates, slowest first.</summary>
    public IReadOnlyList<(string OpType, int Nodes, double Ms, long Macs)> ByOpType() =>
        [.. Nodes.GroupBy(n => n.OpType)
            .Select(g => (g.Key, g.Count(), g.Sum(n => n.Microseconds) / 1000, g.Sum(n => n.Macs)))
            .OrderByDescending(r => r.Item3)];

    /// <summary>
    /// Reads a profile file. Each node's kernel event repeats once per run; the first <paramref name="warmupRuns"/>
    /// occurrences of every node are dropped and the median of the rest is its time.
    /// </summary>
    public static GraphProfile Read(string path, int warmupRuns)
    {
        using var stream = File.OpenRead(path);
        using var json = JsonDocument.Parse(stream);
        return Parse(json.RootElement, warmupRuns, path);
    }

    /// <summary>Parses the profile's event array (see <see cref="Read"/>).</summary>
    public static GraphProfile Parse(JsonElement events, int warmupRuns, string source)
    {
        if (events.ValueKind != JsonValueKind.Array)
            throw new FormatException($"profile '{source}': expected a JSON array of trace events.");
        var order = new List<string>();
        var byNode = new Dictionary<string, (string OpType, long Macs, List<double> Durations)>();
        foreach (var e in events.EnumerateArray())
        {
            if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node"
                || !e.TryGetProperty("name", out var nameValue) || nameValue.GetString() is not { } name
                || !name.EndsWith("_kernel_time", StringComparison.Ordinal)
                || !e.TryGetProperty("args", out var args) || !args.TryGetProperty("op_name", out var op))
                continue;
            var node = name[..^"_kernel_time".Length];
            if (!byNode.TryGetValue(node, out var entry))
            {
                entry = (op.GetString() ?? "?", MacsOf(op.GetString() ?? "", Shapes(args, "input_type_shape"),
                    Shapes(args, "output_type_shape")), []);
                byNode[node] = entry;
                order.Add(node);
            }
            entry.Durations.Add(e.GetProperty("dur").GetDouble());
        }
        if (order.Count == 0) throw new FormatException($"profile '{source}': no node kernel events.");
        int runs = byNode.Values.Min(v => v.Durations.Count) - warmupRuns;
        if (runs <= 0)
            throw new FormatException($"profile '{source}': {runs + warmupRuns} runs recorded, {warmupRuns} of them " +
                "to be dropped as warm-up.");
        var nodes = order.Select(n =>
        {
            var (opType, macs, durations) = byNode[n];
            var kept = durations.Skip(warmupRuns).Order().ToList();
            return new NodeTiming(n, opType, kept[kept.Count / 2], macs);
        }).ToList();
        return new GraphProfile(nodes, runs);
    }

    /// <summary>
    /// Multiply-accumulates of one node from its input and output shapes: a convolution does, for every output
    /// element, C_in/groups · k_h · k_w of them (the weight's shape past its first axis); a matrix product
    /// [… M, K]·[… K, N] does K for every output element, with K the first input's dimension that is not M (so that
    /// transposed operands — Gemm's and FusedMatMul's transA — count alike; a product needs only its first input's
    /// shape, which matters because ONNX Runtime leaves pre-packed weights out of the profile). Other operators count
    /// 0. A convolution needs its weight's shape: profile with <c>session.disable_prepacking</c> to keep it there.
    /// </summary>
    public static long MacsOf(string opType, IReadOnlyList<long[]> inputs, IReadOnlyList<long[]> outputs)
    {
        if (outputs.Count == 0 || inputs.Count == 0) return 0;
        long outputSize = outputs[0].Aggregate(1L, (a, d) => a * d);
        switch (opType)
        {
            case "Conv" or "FusedConv" or "NhwcFusedConv" or "NhwcConv"
                when inputs.Count >= 2 && inputs[1].Length >= 3:
                return outputSize * inputs[1].Skip(1).Aggregate(1L, (a, d) => a * d);
            case "ConvTranspose" when inputs.Count >= 2 && inputs[1].Length >= 3:
                return inputs[0].Aggregate(1L, (a, d) => a * d) * inputs[1].Skip(1).Aggregate(1L, (a, d) => a * d);
            case "MatMul" or "FusedMatMul" or "Gemm" or "MatMulInteger" or "MatMulIntegerToFloat" or "QLinearMatMul"
                or "FusedGemm":
            {
                var a = inputs[0];
                var y = outputs[0];
                if (a.Length == 0 || y.Length == 0) return 0;
                long k = a.Length == 1 ? a[0]
                    : y.Length >= 2 && a[^2] == y[^2] ? a[^1] : a[^2];
                return outputSize * k;
            }
            default:
                return 0;
        }
    }

    // args.input_type_shape: [{"float": [1, 32, 28, 28]}, …], one object per input.
    private static List<long[]> Shapes(JsonElement args, string key)
    {
        var shapes = new List<long[]>();
        if (!args.TryGetProperty(key, out var list) || list.ValueKind != JsonValueKind.Array) return shapes;
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object) continue;
            foreach (var typed in item.EnumerateObject())
            {
                if (typed.Value.ValueKind != JsonValueKind.Array) continue;
                shapes.Add([.. typed.Value.EnumerateArray().Select(d => d.TryGetInt64(out var v) ? v : 0)]);
                break;
            }
        }
        return shapes;
    }
}
