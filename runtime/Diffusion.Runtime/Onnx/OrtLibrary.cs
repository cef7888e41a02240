using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// Finds ONNX Runtime's native library: the path in <c>DIFFUSION_ORT_LIBRARY</c> (e.g. a GPU build) first, then the
/// application folder (where the build places the bundled CPU library). Missing → one message that says how to get it.
/// </summary>
public static class OrtLibrary
{
    /// <summary>The environment variable naming an explicit libonnxruntime.so.</summary>
    public const string EnvironmentVariable = "DIFFUSION_ORT_LIBRARY";

    private static readonly Lazy<LoadedLibrary> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Where the native library was loaded from.</summary>
    public static string Path => Loaded.Value.Path;

    /// <summary>ONNX Runtime's version string.</summary>
    public static string Version => OrtEnv.Instance().GetVersionString();

    /// <summary>Loads the native library (once per process) or throws a <see cref="DiffusionException"/> saying how to get one.</summary>
    public static void EnsureLoaded() => _ = Loaded.Value;

    private sealed record LoadedLibrary(string Path, IntPtr Handle);

    private static LoadedLibrary Load()
    {
        var library = Locate();
        IntPtr handle;
        try { handle = NativeLibrary.Load(library); }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            throw new DiffusionException($"ONNX Runtime's native library '{library}' could not be loaded: {e.Message}", e);
        }
        var ortAssembly = typeof(OrtEnv).Assembly;
        OrtEnv.DisableDllImportResolver = true;
        try
        {
            NativeLibrary.SetDllImportResolver(ortAssembly, (name, _, _) => name == "onnxruntime" ? handle : IntPtr.Zero);
        }
        catch (InvalidOperationException)
        {
            // The host registered its own resolver for the ONNX Runtime assembly before us; it decides.
        }
        return new LoadedLibrary(library, handle);
    }

    private static string Locate()
    {
        var explicitPath = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            if (!File.Exists(explicitPath))
                throw new DiffusionException($"{EnvironmentVariable} is set to '{explicitPath}', but no file is there. Point it at a libonnxruntime.so (for example from a GPU build of ONNX Runtime), or unset it to use the bundled CPU library.");
            return System.IO.Path.GetFullPath(explicitPath);
        }
        var name = RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "onnxruntime.dll"
            : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? "libonnxruntime.dylib" : "libonnxruntime.so";
        var folders = new List<string> { AppContext.BaseDirectory };
        var assemblyDir = System.IO.Path.GetDirectoryName(typeof(OrtEnv).Assembly.Location);
        if (!string.IsNullOrEmpty(assemblyDir)) folders.Add(assemblyDir);
        var candidates = folders.Distinct()
            .SelectMany(f => new[] { System.IO.Path.Combine(f, name), System.IO.Path.Combine(f, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", name) })
            .ToList();
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new DiffusionException(
                $"ONNX Runtime's native library ({name}) was not found (looked in: {string.Join(", ", candidates)}). " +
                $"Run ./diffusion once or build the solution (the build fetches it into .cache/ and copies it beside the app), " +
                $"or set {EnvironmentVariable} to a {name}, for example from a GPU build of ONNX Runtime.");
    }
}
