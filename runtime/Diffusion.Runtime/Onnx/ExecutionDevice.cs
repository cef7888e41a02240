namespace Diffusion.Runtime.Onnx;

/// <summary>Where the network runs: the CPU, or CUDA device N through ONNX Runtime's CUDA execution provider.</summary>
public readonly record struct ExecutionDevice(bool IsCuda, int DeviceId)
{
    /// <summary>The CPU execution provider.</summary>
    public static ExecutionDevice Cpu => new(false, 0);

    /// <summary>CUDA device <paramref name="id"/>.</summary>
    public static ExecutionDevice Cuda(int id = 0) => new(true, id);

    /// <summary>Parses <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public static ExecutionDevice Parse(string text)
    {
        var s = text.Trim().ToLowerInvariant();
        if (s == "cpu") return Cpu;
        if (s == "cuda" || s == "gpu") return Cuda();
        if (s.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(s.AsSpan(5), out var id) && id >= 0)
            return Cuda(id);
        throw new DiffusionArgumentException("Device",
            $"'{text}' is not understood; expected cpu, cuda or cuda:N (N = device index).");
    }

    /// <inheritdoc />
    public override string ToString() => IsCuda ? $"cuda:{DeviceId}" : "cpu";
}
