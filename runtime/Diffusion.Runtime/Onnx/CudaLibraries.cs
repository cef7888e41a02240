using System.Runtime.InteropServices;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// The NVIDIA libraries ONNX Runtime's CUDA provider links against (its ELF dependencies: the driver's
/// <c>libcuda.so.1</c>, the CUDA runtime, cuBLAS/cuBLASLt, cuRAND), found and loaded before the provider, so that the
/// provider's own load finds them already in the process (the dynamic loader matches a dependency against the sonames
/// of loaded libraries). Each is looked for, in this order, by the system loader (<c>LD_LIBRARY_PATH</c>,
/// <c>/etc/ld.so.cache</c>), then in the folders of <see cref="SearchPathVariable"/>, <c>$CUDA_HOME</c>,
/// <c>/usr/local/cuda</c>, a conda environment, and the <c>nvidia/*/lib</c> folders of Python's site-packages (the
/// wheels PyTorch brings). What cannot be found is one line naming each library and where it was looked for.
/// </summary>
public static class CudaLibraries
{
    /// <summary>Colon-separated folders searched first after the system loader's own path.</summary>
    public const string SearchPathVariable = "DIFFUSION_CUDA_LIBRARY_PATH";

    /// <summary>One dependency: where it was loaded from (the system loader's, or a file), or why not.</summary>
    /// <param name="Name">The soname the provider asks for.</param>
    /// <param name="Source">The file it was loaded from, "the system loader", or null if it was not found.</param>
    /// <param name="Problem">Why a file that was found could not be loaded, or null.</param>
    public sealed record Dependency(string Name, string? Source, string? Problem)
    {
        /// <summary>Whether it is loaded.</summary>
        public bool Loaded => Source is not null && Problem is null;

        /// <summary>Which NVIDIA library it is (the driver, cuBLAS, …), or null for the system's own.</summary>
        public string? What => Name switch
        {
            var n when n.StartsWith("libcuda.so", StringComparison.Ordinal) => "the NVIDIA driver",
            var n when n.StartsWith("libcudart.", StringComparison.Ordinal) => "the CUDA runtime",
            var n when n.StartsWith("libcublasLt.", StringComparison.Ordinal) => "cuBLASLt",
            var n when n.StartsWith("libcublas.", StringComparison.Ordinal) => "cuBLAS",
            var n when n.StartsWith("libcurand.", StringComparison.Ordinal) => "cuRAND",
            var n when n.StartsWith("libcufft.", StringComparison.Ordinal) => "cuFFT",
            var n when n.StartsWith("libcudnn", StringComparison.Ordinal) => "cuDNN",
            var n when n.StartsWith("libnv", StringComparison.Ordinal) => "NVIDIA",
            _ => null,
        };

        /// <summary>The library, what it is, and why it is not loaded.</summary>
        public override string ToString() => $"{Name} ({(What is null ? "" : $"{What}: ")}" + (Loaded ? $"{Source})"
            : Problem is null ? "not found)" : $"found at {Source} but not loadable: {Problem})");
    }

    /// <summary>
    /// Loads every dependency of <paramref name="provider"/> and says where each NVIDIA one (and any other that is
    /// missing) came from; loading is idempotent (a library already in the process is found again by its soname).
    /// </summary>
    public static IReadOnlyList<Dependency> Load(string provider)
    {
        var names = ElfDependencies.Read(provider);
        var folders = SearchFolders();
        var result = new Dependency?[names.Count];
        // A library found in a folder may itself need another of the list (cuBLAS needs cuBLASLt): retry those that
        // failed while any new one loads.
        for (bool progress = true; progress;)
        {
            progress = false;
            for (int i = 0; i < names.Count; i++)
            {
                if (result[i] is { Loaded: true }) continue;
                result[i] = Resolve(names[i], folders);
                progress |= result[i]!.Loaded;
            }
        }
        return result.Select(r => r!).Where(r => r.What is not null || !r.Loaded).ToList();
    }

    /// <summary>
    /// Loads the provider's dependencies or throws one line naming each that is missing and where it was looked for.
    /// </summary>
    internal static void Require(string provider, ExecutionDevice device)
    {
        var missing = Load(provider).Where(d => !d.Loaded).ToList();
        if (missing.Count == 0) return;
        throw new DiffusionException($"Device {device}: ONNX Runtime's CUDA provider ({provider}) needs " +
            $"{string.Join(", ", missing)}; looked for by the system loader " +
                $"(LD_LIBRARY_PATH={Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? ""}, /etc/ld.so.cache) " +
            $"and in {Where()}. Install the NVIDIA driver and CUDA 13 (runtime, cuBLAS, cuRAND; e.g. PyTorch's " +
                $"nvidia-* wheels), or name their folders in {SearchPathVariable}.");
    }

    /// <summary>The folders searched after the system loader, in order (only those that exist).</summary>
    public static IReadOnlyList<string> SearchFolders()
    {
        var folders = new List<string>();
        foreach (var f in (Environment.GetEnvironmentVariable(SearchPathVariable) ?? "").Split(':'))
            if (f.Length > 0) folders.Add(f);
        foreach (var root in new[] { Environment.GetEnvironmentVariable("CUDA_HOME"), "/usr/local/cuda" })
            if (!string.IsNullOrEmpty(root))
                folders.AddRange([Path.Combine(root, "lib64"), Path.Combine(root, "targets", "x86_64-linux", "lib")]);
        if (Environment.GetEnvironmentVariable("CONDA_PREFIX") is { Length: > 0 } conda)
            folders.Add(Path.Combine(conda, "lib"));
        foreach (var sitePackages in PythonSitePackages())
            foreach (var wheel in Directory.EnumerateDirectories(Path.Combine(sitePackages, "nvidia")).Order())
                folders.Add(Path.Combine(wheel, "lib"));
        return folders.Where(Directory.Exists).Select(Path.GetFullPath).Distinct().ToList();
    }

    private static string Where() => SearchFolders() is { Count: > 0 } found
        ? string.Join(", ", found)
        : $"{SearchPathVariable}, $CUDA_HOME/lib64, /usr/local/cuda/lib64, $CONDA_PREFIX/lib and Python's " +
            "site-packages/nvidia/*/lib (none of them exists here)";

    private static Dependency Resolve(string name, IReadOnlyList<string> folders)
    {
        if (NativeLibrary.TryLoad(name, out _)) return new(name, "the system loader", null);
        string? problem = null, source = null;
        foreach (var folder in folders)
        {
            var file = Path.Combine(folder, name);
            if (!File.Exists(file)) continue;
            try
            {
                NativeLibrary.Load(file);
                return new(name, file, null);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                (source, problem) = (source ?? file, problem ?? LoaderMessage(e.Message));
            }
        }
        return new(name, source, problem);
    }

    /// <summary>
    /// The dynamic loader's own words from .NET's message (which first suggests strace and LD_DEBUG).
    /// </summary>
    private static string LoaderMessage(string message)
    {
        const string Marker = "environment variable:";
        int at = message.LastIndexOf(Marker, StringComparison.Ordinal);
        return CudaProvider.OneLine(at < 0 ? message : message[(at + Marker.Length)..]);
    }

    /// <summary>
    /// Python's site-packages folders with an <c>nvidia</c> folder (pip's wheels), found without running Python.
    /// </summary>
    private static IEnumerable<string> PythonSitePackages()
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var prefixes = new[]
        {
            Environment.GetEnvironmentVariable("VIRTUAL_ENV"), Environment.GetEnvironmentVariable("CONDA_PREFIX"),
            "/usr/local", "/usr", "/opt/conda", home.Length > 0 ? Path.Combine(home, ".local") : null,
        };
        foreach (var prefix in prefixes.Where(p => !string.IsNullOrEmpty(p)).Distinct())
        {
            var lib = Path.Combine(prefix!, "lib");
            if (!Directory.Exists(lib)) continue;
            IEnumerable<string> pythons;
            try { pythons = Directory.EnumerateDirectories(lib, "python3*").Order().ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var python in pythons)
                foreach (var kind in new[] { "site-packages", "dist-packages" })
                    if (Directory.Exists(Path.Combine(python, kind, "nvidia")))
                        yield return Path.Combine(python, kind);
        }
    }
}
