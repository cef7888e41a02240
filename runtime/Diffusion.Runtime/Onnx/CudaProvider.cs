using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// ONNX Runtime's CUDA execution provider as a plugin library (<c>libonnxruntime_providers_cuda.so</c> built for the
/// plugin-EP API, i.e. exporting <c>CreateEpFactories</c>): registered with ORT's environment once per process, then
/// appended to a session for one of the GPUs it reports. Core and provider must be the same ONNX Runtime release —
/// a newer core accepts an older provider without complaint, which is not safe — so a mismatch is refused.
/// </summary>
public static class CudaProvider
{
    /// <summary>
    /// The environment variable naming the provider library, when <see cref="SessionSettings.CudaProviderLibrary"/>
    /// does not.
    /// </summary>
    public const string EnvironmentVariable = "DIFFUSION_CUDA_PROVIDER";

    /// <summary>The execution provider's name in ONNX Runtime.</summary>
    public const string ProviderName = "CUDAExecutionProvider";

    private const string RegistrationName = "diffusion-cuda";
    private static readonly Lock Gate = new();
    private static string? _registered;

    /// <summary>The library <see cref="EnvironmentVariable"/> names, or null.</summary>
    public static string? FromEnvironment => Environment.GetEnvironmentVariable(EnvironmentVariable) is
    {
        Length: > 0,
    } v && !string.IsNullOrWhiteSpace(v) ? v : null;

    /// <summary>
    /// Registers <paramref name="library"/> (once per process) and appends its CUDA provider for
    /// <paramref name="device"/> with the given provider options.
    /// </summary>
    internal static OrtEpDevice Append(SessionOptions options, string library, ExecutionDevice device,
        IReadOnlyDictionary<string, string> providerOptions)
    {
        var env = OrtEnv.Instance();
        var path = Register(env, library);
        var devices = env.GetEpDevices().Where(d => d.EpName == ProviderName).ToList();
        if (devices.Count == 0)
            throw new DiffusionException(
                $"Device {device}: the CUDA provider '{path}' loaded but reports no GPU (no CUDA device visible to " +
                    $"it: check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES).");
        if (device.DeviceId >= devices.Count)
            throw new DiffusionArgumentException("Device",
                $"{device}: the CUDA provider reports {devices.Count} GPU{(devices.Count == 1 ? "" : "s")} " +
                    $"(cuda:0…cuda:{devices.Count - 1}).");
        var chosen = devices[device.DeviceId];
        var core = env.GetVersionString();
        if (chosen.EpMetadata.Entries.TryGetValue("version", out var provider))
            CheckSameRelease(path, core, provider);
        try { options.AppendExecutionProvider(env, [chosen], providerOptions); }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException($"Device {device}: ONNX Runtime refused the CUDA provider's options " +
                $"({string.Join(", ", providerOptions.Select(kv => $"{kv.Key}={kv.Value}"))}): {OneLine(e.Message)}", e);
        }
        return chosen;
    }

    /// <summary>Refuses a provider built for another ONNX Runtime release than the core's (major.minor).</summary>
    internal static void CheckSameRelease(string path, string coreVersion, string providerVersion)
    {
        static string Release(string v) => string.Join('.', v.Split('-', '+')[0].Split('.').Take(2));
        if (Release(coreVersion) != Release(providerVersion))
            throw new DiffusionException(
                $"CUDA provider '{path}' is ONNX Runtime {providerVersion}, but the core ({OrtLibrary.Path}) " +
                $"is {coreVersion}: use the provider of the same release as the core " +
                    $"(set {OrtLibrary.EnvironmentVariable} to that release's libonnxruntime.so).");
    }

    private static string Register(OrtEnv env, string library)
    {
        if (!File.Exists(library))
            throw new DiffusionException($"CUDA provider library '{library}' does not exist " +
                $"(from {(library == FromEnvironment ? EnvironmentVariable : "the CUDA provider option")}); expected " +
                    $"ONNX Runtime's libonnxruntime_providers_cuda.so.");
        var path = Path.GetFullPath(library);
        lock (Gate)
        {
            if (_registered == path) return path;
            if (_registered is not null)
                throw new DiffusionException($"CUDA provider library '{path}': this process already registered " +
                    $"'{_registered}', and ONNX Runtime keeps one per process.");
            try { env.RegisterExecutionProviderLibrary(RegistrationName, path); }
            catch (OnnxRuntimeException e)
            {
                throw new DiffusionException(
                    $"CUDA provider library '{path}' could not be registered with ONNX " +
                        $"Runtime {env.GetVersionString()}: {OneLine(e.Message)} " +
                    "(it must be a plugin build of the same ONNX Runtime release, exporting CreateEpFactories, with " +
                        "its CUDA, cuBLAS and cuDNN libraries on LD_LIBRARY_PATH).", e);
            }
            _registered = path;
            return path;
        }
    }

    private static string OneLine(string message) =>
        string.Join(' ', message.ReplaceLineEndings(" ").Split(' ', StringSplitOptions.RemoveEmptyEntries));
}
