using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// ONNX Runtime's native library. By default nothing of ours is involved: the Microsoft.ML.OnnxRuntime package's own
/// loader finds the library the package placed beside the app. Only when <c>DIFFUSION_ORT_LIBRARY</c> names a file
/// (e.g. a GPU build) is that file loaded and given to the ONNX Runtime assembly through a DllImport resolver; the
/// resolver is scoped to that assembly, never process-wide. A library that cannot be loaded is one clear message.
/// </summary>
public static class OrtLibrary
{
    /// <summary>The environment variable naming an explicit libonnxruntime.so.</summary>
    public const string EnvironmentVariable = "DIFFUSION_ORT_LIBRARY";

    private static readonly Lazy<string> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Where the native library was loaded from (the file, where it can be located).</summary>
    public static string Path => Loaded.Value;

    /// <summary>ONNX Runtime's version string.</summary>
    public static string Version
    {
        get
        {
            EnsureLoaded();
            return OrtEnv.Instance().GetVersionString();
        }
    }

    /// <summary>
    /// Loads the native library (once per process) or throws a <see cref="DiffusionException"/> saying how to get one.
    /// </summary>
    public static void EnsureLoaded() => _ = Loaded.Value;

    private static string Load()
    {
        var explicitPath = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(explicitPath)) return LoadExplicit(explicitPath);
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
                    $"runtimes/{RuntimeInformation.RuntimeIdentifier}/native); rebuild the app, or " +
                        $"set {EnvironmentVariable} to a libonnxruntime.so.", inner);
        }
        return Locate() ?? $"found by {typeof(OrtEnv).Assembly.GetName().Name}'s own loader";
    }

    private static string LoadExplicit(string explicitPath)
    {
        if (!File.Exists(explicitPath))
            throw new DiffusionException($"{EnvironmentVariable} is set to '{explicitPath}', but no file is there. " +
                $"Point it at a libonnxruntime.so (for example from a GPU build of ONNX Runtime), or unset it to use " +
                    $"the one that came with the app.");
        var path = System.IO.Path.GetFullPath(explicitPath);
        IntPtr handle;
        try { handle = NativeLibrary.Load(path); }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            throw new DiffusionException($"{EnvironmentVariable}: ONNX Runtime's native library '{path}' could not " +
                $"be loaded: {e.Message.ReplaceLineEndings(" ").Trim()}", e);
        }
        CheckVersion(path, NativeVersion(handle));
        var ortAssembly = typeof(OrtEnv).Assembly;
        OrtEnv.DisableDllImportResolver = true;
        try
        {
            NativeLibrary.SetDllImportResolver(ortAssembly, (name, _, _) => name == "onnxruntime" ? handle
                : IntPtr.Zero);
        }
        catch (InvalidOperationException)
        {
            // The host registered its own resolver for the ONNX Runtime assembly before us; it decides.
        }
        return path;
    }

    /// <summary>The version of the ONNX Runtime API this app was compiled against (the managed assembly's).</summary>
    public static Version ApiVersion => typeof(OrtEnv).Assembly.GetName().Version ?? new Version(0, 0);

    /// <summary>
    /// A core older than the managed API cannot serve it (the API asks the core for its own API version, and an older
    /// core refuses that mid-initialisation); a library without OrtGetApiBase is not ONNX Runtime at all.
    /// </summary>
    internal static void CheckVersion(string path, string? nativeVersion)
    {
        if (nativeVersion is null)
            throw new DiffusionException($"{EnvironmentVariable}: '{path}' is not ONNX Runtime's library (it exports " +
                $"no OrtGetApiBase).");
        var api = ApiVersion;
        if (System.Version.TryParse(nativeVersion.Split('-', '+')[0], out var v)
            && (v.Major, v.Minor).CompareTo((api.Major, api.Minor)) < 0)
            throw new DiffusionException(
                $"{EnvironmentVariable}: '{path}' is ONNX Runtime {nativeVersion}, older than the ONNX Runtime API " +
                $"this app was built with ({typeof(OrtEnv).Assembly.GetName().Name} {api.ToString(3)}); point it at " +
                    $"ONNX Runtime {api.ToString(2)} or later, or build the app " +
                "for that version (-p:OrtNuGetVersion=X.Y.Z, or -p:OrtSource=npm for 1.29).");
    }

    /// <summary>
    /// The library's own version string (OrtGetApiBase()->GetVersionString()), or null if it is not ONNX Runtime.
    /// </summary>
    private static unsafe string? NativeVersion(IntPtr handle)
    {
        if (!NativeLibrary.TryGetExport(handle, "OrtGetApiBase", out var getApiBase)) return null;
        var apiBase = ((delegate* unmanaged<IntPtr*>)getApiBase)(); // struct OrtApiBase { GetApi; GetVersionString; }
        if (apiBase == null || apiBase[1] == IntPtr.Zero) return null;
        return Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr>)apiBase[1])());
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
