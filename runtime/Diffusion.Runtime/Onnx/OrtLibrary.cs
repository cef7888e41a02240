using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// ONNX Runtime's native library, as the NuGet package placed it beside the app: <c>Microsoft.ML.OnnxRuntime</c> (the
/// CPU build, the default) or, in a build with <c>-p:OrtGpu=true</c>, <c>Microsoft.ML.OnnxRuntime.Gpu.Linux</c>, whose
/// folder also holds the CUDA execution provider (<see cref="CudaProvider"/>). Nothing of ours is involved in loading
/// it: the package's own loader finds it. A library that cannot be loaded is one clear message.
/// </summary>
public static class OrtLibrary
{
    private static readonly Lazy<string> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Where the native library was loaded from (the file, where it can be located).</summary>
    public static string Path => Loaded.Value;

    /// <summary>
    /// The folder of the native library, where the package also puts its execution providers; or null.
    /// </summary>
    public static string? Folder => File.Exists(Path) ? System.IO.Path.GetDirectoryName(Path) : null;

    /// <summary>ONNX Runtime's version string.</summary>
    public static string Version
    {
        get
        {
            EnsureLoaded();
            return OrtEnv.Instance().GetVersionString();
        }
    }

    /// <summary>The NuGet package that brought the native library: the CPU build or the CUDA build.</summary>
    public static string Package => CudaProvider.Library is null ? "Microsoft.ML.OnnxRuntime (CPU)"
        : "Microsoft.ML.OnnxRuntime.Gpu.Linux (CUDA)";

    /// <summary>
    /// Loads the native library (once per process) or throws a <see cref="DiffusionException"/> saying how to get one.
    /// </summary>
    public static void EnsureLoaded() => _ = Loaded.Value;

    private static string Load()
    {
        try
        {
            _ = OrtEnv.Instance(); // the package's own loader: throws if the native library is missing or broken
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException
            or EntryPointNotFoundException or BadImageFormatException or OnnxRuntimeException)
        {
            var inner = e is TypeInitializationException { InnerException: { } i } ? i : e;
            throw new DiffusionException(
                $"ONNX Runtime's native library could not be loaded ({inner.Message.Split('\n')[0].Trim()}). " +
                $"The {typeof(OrtEnv).Assembly.GetName().Name} package places it beside the app (or under " +
                    $"runtimes/{RuntimeInformation.RuntimeIdentifier}/native): rebuild the app.", inner);
        }
        return Locate() ?? $"found by {typeof(OrtEnv).Assembly.GetName().Name}'s own loader";
    }

    /// <summary>The native library file beside the app, where the package's loader looks first.</summary>
    private static string? Locate()
    {
        var name = RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "onnxruntime.dll"
            : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? "libonnxruntime.dylib" : "libonnxruntime.so";
        var folders = new[]
        {
            AppContext.BaseDirectory, System.IO.Path.GetDirectoryName(typeof(OrtEnv).Assembly.Location) ?? "",
        }
            .Where(f => f.Length > 0).Distinct();
        return folders
            .SelectMany(f => new[]
            {
                System.IO.Path.Combine(f, name),
                System.IO.Path.Combine(f, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", name),
            })
            .FirstOrDefault(File.Exists);
    }
}
