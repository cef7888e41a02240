using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Training;

/// <summary>
/// Process-wide TorchSharp settings the trainer commands share: threads, the device, what libtorch this is.
/// </summary>
public static class TorchSetup
{
    /// <summary>"TorchSharp 0.107.0, libtorch 2.10.0 (cpu)": what trains.</summary>
    public static string Describe() =>
        $"TorchSharp {typeof(torch).Assembly.GetName().Version?.ToString(3)}, " +
            $"libtorch {__version__}{(cuda.is_available() ? $" with CUDA ({cuda.device_count()} devices)" : " (CPU)")}";

    /// <summary>Sets libtorch's intra-op threads: <paramref name="threads"/>, or one per logical core for 0.</summary>
    public static int SetThreads(int threads)
    {
        if (threads < 0 || threads > 4 * Environment.ProcessorCount + 64)
            throw new DiffusionArgumentException("Threads",
                $"{threads}: expected 0 (one per core) up to {4 * Environment.ProcessorCount + 64}.");
        set_num_threads(threads > 0 ? threads : Environment.ProcessorCount);
        return get_num_threads();
    }

    /// <summary>
    /// Whether this CPU multiplies bfloat16 natively (the avx512_bf16 or amx_bf16 flag in /proc/cpuinfo), where
    /// --precision bf16 pays on the CPU; false where the flags cannot be read.
    /// </summary>
    public static bool CpuHasBFloat16()
    {
        try
        {
            var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l =>
                l.StartsWith("flags", StringComparison.Ordinal));
            return flags is not null && flags.Split(' ', ':', '\t').Any(f => f is "avx512_bf16" or "amx_bf16");
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>
    /// The warning for <paramref name="precision"/> on <paramref name="device"/> where it will be slow — bfloat16 on a
    /// CPU without native bfloat16, where libtorch's convolutions leave oneDNN for its own emulated kernels — or null.
    /// </summary>
    public static string? PrecisionWarning(Precision precision, Device device) =>
        precision == Precision.BFloat16 && device.type == DeviceType.CPU && !CpuHasBFloat16()
            ? "warning: --precision bf16 on a CPU without AVX512-BF16 or AMX: libtorch emulates bfloat16 here, " +
                "outside oneDNN, many times slower than fp32 (15× on an AVX2 AMD EPYC)."
            : null;

    /// <summary>Parses cpu, cuda or cuda:N; CUDA on a build or machine without it is a clear error.</summary>
    public static Device ParseDevice(string text)
    {
        var s = text.Trim().ToLowerInvariant();
        if (s == "cpu") return CPU;
        int index = 0;
        if (s != "cuda"
            && !(s.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(s.AsSpan(5), out index) && index >= 0))
            throw new DiffusionArgumentException(nameof(TrainConfig.Device),
                $"'{text}': expected cpu, cuda or cuda:N.");
        if (!cuda.is_available())
            throw new DiffusionArgumentException(nameof(TrainConfig.Device),
                $"'{text}': this TorchSharp build has no usable CUDA (libtorch {__version__}, CPU package). " +
                "On a machine with an NVIDIA GPU, build with -p:TorchBackend=cuda, which takes TorchSharp-cuda-linux " +
                    "where a NuGet feed serves it.");
        if (index >= cuda.device_count())
            throw new DiffusionArgumentException(nameof(TrainConfig.Device),
                $"'{text}': only {cuda.device_count()} CUDA devices are visible.");
        return new Device(DeviceType.CUDA, index);
    }
}
