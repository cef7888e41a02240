using System.Globalization;

namespace Diffusion.Trainer.Training;

/// <summary>
/// Which of oneDNN's kernels a training step ran, read from the lines oneDNN prints under
/// <c>ONEDNN_VERBOSE=profile_exec</c> (libtorch's convolutions, and its bfloat16 matmuls where the CPU has native
/// bfloat16, go through oneDNN; its norms, elementwise ops and emulated bfloat16 do not): per primitive, kernel,
/// pass, data types and layouts, the calls and milliseconds of one step. The steps are told apart by count: every
/// step of the same network runs the same sequence of primitives, which <see cref="Parse"/> checks.
/// </summary>
/// <param name="Version">"oneDNN v3.7.1", or "" where the trace does not say.</param>
/// <param name="Isa">The instruction set oneDNN dispatched to ("Intel AVX2", "Intel AVX-512 with … Intel AMX").
/// </param>
/// <param name="Kernels">The kernels of the steps kept, most time first.</param>
/// <param name="Steps">How many steps they were summed over.</param>
public sealed record OneDnnTrace(string Version, string Isa, IReadOnlyList<OneDnnKernel> Kernels, int Steps)
{
    /// <summary>oneDNN's milliseconds in one step, all kernels.</summary>
    public double MillisecondsPerStep => Kernels.Sum(k => k.MillisecondsPerStep);

    /// <summary>
    /// Reads a verbose trace of <paramref name="totalSteps"/> steps and keeps the last <paramref name="keptSteps"/>
    /// (the first ones are warm-up: primitive creation, first touches). A trace with no executions is a step that
    /// did not use oneDNN at all (bfloat16 on a CPU without native bfloat16: libtorch's own kernels).
    /// </summary>
    public static OneDnnTrace Parse(string text, int totalSteps, int keptSteps)
    {
        if (totalSteps <= 0 || keptSteps <= 0 || keptSteps > totalSteps)
            throw new ArgumentOutOfRangeException(nameof(keptSteps), keptSteps,
                $"expected 1…{totalSteps} of {totalSteps} steps.");
        string version = "", isa = "";
        var executions = new List<(OneDnnKernelKey Key, double Milliseconds)>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (!line.StartsWith("onednn_verbose,", StringComparison.Ordinal)
                && !line.StartsWith("dnnl_verbose,", StringComparison.Ordinal)) continue;
            var fields = line.Split(',');
            int info = Array.IndexOf(fields, "info");
            if (info > 0 && info + 1 < fields.Length)
            {
                var rest = fields[info + 1];
                if (rest.StartsWith("oneDNN v", StringComparison.Ordinal)
                    || rest.StartsWith("DNNL v", StringComparison.Ordinal))
                    version = string.Join(' ', rest.Split(' ').Take(2));
                else if (rest == "cpu" && info + 2 < fields.Length
                    && fields[info + 2].StartsWith("isa:", StringComparison.Ordinal))
                    isa = string.Join(',', fields[(info + 2)..])["isa:".Length..]; // the name may hold commas
                continue;
            }
            int exec = Array.IndexOf(fields, "exec");
            // primitive executions only: oneDNN Graph's partitions print "graph,exec"
            if (exec <= 0 || fields[exec - 1] == "graph" || exec + 5 >= fields.Length) continue;
            if (!double.TryParse(fields[^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var ms)) continue;
            executions.Add((OneDnnKernelKey.From(fields[exec + 2], fields[exec + 3], fields[exec + 4],
                fields[exec + 5]), ms));
        }
        if (executions.Count % totalSteps != 0)
            throw new DiffusionException($"the oneDNN trace has {executions.Count} primitive executions, not a " +
                $"multiple of its {totalSteps} steps: the steps did not run the same primitives.");
        int perStep = executions.Count / totalSteps;
        for (int i = perStep; i < executions.Count; i++)
            if (executions[i].Key != executions[i - perStep].Key)
                throw new DiffusionException($"the oneDNN trace's steps differ at execution {i % perStep} of step " +
                    $"{i / perStep + 1} ({executions[i].Key} vs {executions[i - perStep].Key}).");
        var kept = executions.Skip((totalSteps - keptSteps) * perStep);
        var kernels = kept.GroupBy(e => e.Key)
            .Select(g => new OneDnnKernel(g.Key, (double)g.Count() / keptSteps, g.Sum(e => e.Milliseconds) / keptSteps))
            .OrderByDescending(k => k.MillisecondsPerStep).ToList();
        return new OneDnnTrace(version, isa, kernels, keptSteps);
    }
}

/// <summary>
/// One kind of oneDNN execution: <paramref name="Primitive"/> (convolution, reorder, matmul, …), the kernel that ran
/// it ("brg_conv_fwd:avx512_core_amx", "jit:avx2"), its pass (forward_training, backward_data, …; "" for
/// reorders), the data types of its memory ("f32", "bf16", "bf16→f32" for a conversion) and, for a reorder, the
/// layouts it converts between (oneDNN's format tags: "abcd" is PyTorch's NCHW, "acdb" channels-last, "aBcd16b" a
/// channel-blocked one).
/// </summary>
public sealed record OneDnnKernelKey(string Primitive, string Implementation, string Pass, string DataTypes,
    string Layouts)
{
    /// <summary>From a verbose line's primitive, implementation, propagation and memory-descriptor fields.</summary>
    public static OneDnnKernelKey From(string primitive, string implementation, string propagation,
        string memoryDescriptors)
    {
        // each descriptor: "src:f32::blocked:abcd::f0" (oneDNN 3.1 on) or "src_f32::blocked:abcd:f0" (earlier)
        var descriptors = memoryDescriptors.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => d.Split(':'))
            .Select(p => (Type: DataTypeOf(p), Format: FormatOf(p)))
            .ToList();
        var types = descriptors.Select(d => d.Type).Where(t => t is not ("" or "undef")).Distinct().ToList();
        string dataTypes = primitive == "reorder" && types.Count == 2
            ? $"{types[0]}→{types[1]}" : string.Join("/", types);
        string layouts = primitive == "reorder" && descriptors.Count >= 2
            ? $"{descriptors[0].Format}→{descriptors[^1].Format}" : "";
        return new OneDnnKernelKey(primitive, implementation, propagation == "undef" ? "" : propagation, dataTypes,
            layouts);
    }

    private static readonly string[] KnownDataTypes =
        ["f32", "bf16", "f16", "f64", "s8", "u8", "s32", "f8_e5m2", "f8_e4m3", "undef"];

    /// <summary>The descriptor's data type: its second field, or the suffix of its first in older traces.</summary>
    private static string DataTypeOf(string[] parts)
    {
        var old = KnownDataTypes.FirstOrDefault(t => parts[0].EndsWith("_" + t, StringComparison.Ordinal));
        return old ?? (parts.Length > 1 ? parts[1] : "");
    }

    /// <summary>The format tag after "blocked:" ("abcd", "aBcd8b"), or "" where the descriptor has none.</summary>
    private static string FormatOf(string[] parts)
    {
        int blocked = Array.IndexOf(parts, "blocked");
        return blocked >= 0 && blocked + 1 < parts.Length ? parts[blocked + 1] : "";
    }

    /// <inheritdoc/>
    public override string ToString() =>
        string.Join(" ", new[] { Primitive, Implementation, Pass, DataTypes, Layouts }.Where(s => s.Length > 0));
}

/// <summary>A kind of execution and its calls and milliseconds in one step.</summary>
public sealed record OneDnnKernel(OneDnnKernelKey Key, double CallsPerStep, double MillisecondsPerStep);
