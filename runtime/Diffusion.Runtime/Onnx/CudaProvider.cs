using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// ONNX Runtime's CUDA execution provider, as <c>Microsoft.ML.OnnxRuntime.Gpu.Linux</c> ships it beside the core
/// (<c>libonnxruntime_providers_cuda.so</c>, built for CUDA 13): its NVIDIA libraries loaded first
/// (<see cref="CudaLibraries"/>), then registered with ORT's environment once per process through the public
/// execution-provider library API (<see cref="OrtEnv.RegisterExecutionProviderLibrary"/>), which also gives ORT the
/// provider's data transfer (host ↔ device copies) and its memory descriptions (pinned host memory, device memory);
/// a session appends it for one of the GPUs it reports. On the CPU build (no provider beside the core) CUDA is one line
/// saying how to build for it.
/// </summary>
public static class CudaProvider
{
    /// <summary>The execution provider's name in ONNX Runtime.</summary>
    public const string ProviderName = "CUDAExecutionProvider";

    /// <summary>The provider library's file name.</summary>
    public const string FileName = "libonnxruntime_providers_cuda.so";

    private const string RegistrationName = "diffusion-cuda";
    private static readonly Lock Gate = new();
    private static bool _registered;

    /// <summary>The provider library beside ONNX Runtime's core (a GPU build), or null (the CPU build).</summary>
    public static string? Library => OrtLibrary.Folder is { } folder && File.Exists(Path.Combine(folder, FileName))
        ? Path.Combine(folder, FileName) : null;

    /// <summary>
    /// The GPUs the provider reports, in order (<c>cuda:N</c> is the N-th), after registering it; throws a
    /// <see cref="DiffusionException"/> on the CPU build or when its NVIDIA libraries are missing.
    /// </summary>
    public static IReadOnlyList<OrtEpDevice> Devices(ExecutionDevice device)
    {
        var library = Library ?? throw new DiffusionException(
            $"Device {device}: this build's ONNX Runtime ({OrtLibrary.Package}, {OrtLibrary.Path}) has no CUDA " +
                $"execution provider. Build with -p:OrtGpu=true (Microsoft.ML.OnnxRuntime.Gpu.Linux, CUDA 13), or " +
                $"use the GPU bundle (runtime/gpu-bundle).");
        var env = OrtEnv.Instance();
        lock (Gate)
        {
            if (!_registered)
            {
                CudaLibraries.Require(library, device);
                try { env.RegisterExecutionProviderLibrary(RegistrationName, library); }
                catch (OnnxRuntimeException e)
                {
                    throw new DiffusionException($"Device {device}: ONNX Runtime {env.GetVersionString()} could not " +
                        $"register its CUDA provider ({library}): {OneLine(e.Message)}", e);
                }
                _registered = true;
            }
        }
        return env.GetEpDevices().Where(d => d.EpName == ProviderName).ToList();
    }

    /// <summary>Appends the provider for <paramref name="device"/> with the given provider options.</summary>
    internal static OrtEpDevice Append(SessionOptions options, ExecutionDevice device,
        IReadOnlyDictionary<string, string> providerOptions)
    {
        var devices = Devices(device);
        if (devices.Count == 0)
            throw new DiffusionException(
                $"Device {device}: the CUDA provider ({Library}) loaded but reports no GPU (no CUDA device " +
                    $"visible to it: check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES).");
        if (device.DeviceId >= devices.Count)
            throw new DiffusionArgumentException("Device",
                $"{device}: the CUDA provider reports {devices.Count} GPU{(devices.Count == 1 ? "" : "s")} " +
                    $"(cuda:0…cuda:{devices.Count - 1}).");
        var chosen = devices[device.DeviceId];
        try { options.AppendExecutionProvider(OrtEnv.Instance(), [chosen], providerOptions); }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException($"Device {device}: ONNX Runtime refused the CUDA provider's options " +
                $"({string.Join(", ", providerOptions.Select(kv => $"{kv.Key}={kv.Value}"))}): {OneLine(e.Message)}", e);
        }
        return chosen;
    }

    /// <summary>A native library's multi-line message on one line.</summary>
    internal static string OneLine(string message) =>
        string.Join(' ', message.ReplaceLineEndings(" ").Split(' ', StringSplitOptions.RemoveEmptyEntries));
}
