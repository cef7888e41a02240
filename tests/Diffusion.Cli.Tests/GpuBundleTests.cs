using System.Diagnostics;

namespace Diffusion.Cli.Tests;

/// <summary>
/// The GPU bundle (runtime/gpu-bundle/make-bundle.sh) built for real — a self-contained publish on ONNX Runtime's
/// official CUDA package (-p:OrtGpu=true) — on a machine without a GPU: the parts fit the carry limit, unpack.sh puts
/// them back together, the bundled CLI runs on the CPU on its own .NET runtime, and asking it for CUDA is one line
/// naming each NVIDIA library the provider needs and where it was looked for.
/// </summary>
public class GpuBundleTests
{
    private static string Repo => TestFolders.Repository;

    [Fact]
    public void The_bundle_builds_in_parts_unpacks_and_runs_on_its_own_runtime()
    {
        var folder = TestFolders.Create("gpu-bundle");
        var output = Path.Combine(folder, "out");
        var (code, stdout, stderr) = Run(Path.Combine(Repo, "runtime", "gpu-bundle", "make-bundle.sh"),
            ["--out", output, "--xz-level", "0"]);
        Assert.True(code == 0, stdout + stderr);

        // The CUDA provider alone is 284 MB: several parts, each within one carry.
        var parts = Directory.GetFiles(output, "bundle.tar.xz.part-*").Order().ToArray();
        Assert.True(parts.Length >= 3, $"{parts.Length} part(s): the bundle should need several 60 MiB parts");
        Assert.All(parts, p =>
            Assert.True(new FileInfo(p).Length <= 60 << 20, $"{p} is {new FileInfo(p).Length} bytes"));
        Directory.Delete(Path.Combine(output, "bundle"), recursive: true);

        // Only the parts, their checksums and unpack.sh travel.
        var device = Path.Combine(folder, "device");
        Directory.CreateDirectory(device);
        foreach (var f in parts.Append(Path.Combine(output, "SHA256SUMS")).Append(Path.Combine(output, "unpack.sh")))
            File.Move(f, Path.Combine(device, Path.GetFileName(f)));
        (code, stdout, stderr) = Run(Path.Combine(device, "unpack.sh"), [Path.Combine(device, "opt")]);
        Assert.True(code == 0, stdout + stderr);
        var bundle = Path.Combine(device, "opt", "bundle");
        var runner = Path.Combine(bundle, "run-gpu.sh");
        Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu.Linux 1.31.0", File.ReadAllText(Path.Combine(bundle, "VERSION")));
        foreach (var lib in new[] { "libonnxruntime.so", "libonnxruntime_providers_shared.so", CudaProviderFile })
            Assert.True(File.Exists(Path.Combine(bundle, "app", lib)), $"{lib} is not in the bundle");

        // The bundled CLI on the CPU: its own .NET runtime (self-contained: the SDK's is not used) and the GPU
        // package's core.
        Assert.True(File.Exists(Path.Combine(bundle, "app", "libcoreclr.so")), "the publish is not self-contained");
        (code, stdout, stderr) = Run(runner, ["info"]);
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("1.31.0", stdout);
        (code, _, stderr) = Run(runner,
            ["sample", "--model", Path.Combine(bundle, "app", "models", "gaussian", "gaussian.onnx"),
                "-n", "1", "--steps", "5", "--out", Path.Combine(folder, "cpu.png")]);
        Assert.True(code == 0, stderr);

        // --check lists the provider's NVIDIA dependencies — exactly its DT_NEEDED entries as readelf -d shows
        // them for 1.31.0 — and fails, here where none of them exists.
        (code, stdout, stderr) = Run(runner, ["--check"]);
        Assert.Equal(1, code);
        foreach (var lib in NvidiaDependencies) Assert.Contains(lib, stdout);
        Assert.Contains("libcuda.so.1 (the NVIDIA driver: not found)", stderr);

        // The prepared GPU measurement script stops at once, saying why, where CUDA cannot be used.
        var check = Path.Combine(folder, "gpu-check");
        (code, stdout, _) = Run(Path.Combine(bundle, "gpu-check.sh"), [check]);
        Assert.Equal(1, code);
        Assert.Contains("CUDA cannot be used here: error: Device cuda:0:", stdout);
        Assert.Contains("libcuda.so.1 (the NVIDIA driver: not found)", File.ReadAllText(Path.Combine(check,
            "summary.txt")));

        // CUDA: one line naming each missing library and where it was looked for; nothing written.
        (code, _, stderr) = Run(runner,
            ["sample", "--device", "cuda", "-n", "1", "--out", Path.Combine(folder, "gpu.png")]);
        Assert.Equal(1, code);
        Assert.Single(stderr.Trim().Split('\n'));
        foreach (var lib in NvidiaDependencies) Assert.Contains($"{lib} (", stderr);
        Assert.Contains("LD_LIBRARY_PATH", stderr);
        Assert.Contains(CudaProviderFile, stderr);
        Assert.False(File.Exists(Path.Combine(folder, "gpu.png")));

        // A folder named in DIFFUSION_CUDA_LIBRARY_PATH is searched: a library found there is loaded from it (here
        // a stand-in under the CUDA runtime's name), and one that is found but broken says why.
        var libraries = Path.Combine(folder, "cuda-libs");
        Directory.CreateDirectory(libraries);
        File.Copy("/lib/x86_64-linux-gnu/libz.so.1", Path.Combine(libraries, "libcudart.so.13"));
        File.WriteAllText(Path.Combine(libraries, "libcurand.so.10"), "damaged");
        (code, _, stderr) = Run(runner, ["sample", "--device", "cuda", "-n", "1"],
            new() { ["DIFFUSION_CUDA_LIBRARY_PATH"] = libraries });
        Assert.Equal(1, code);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.DoesNotContain("libcudart.so.13 (", stderr);
        Assert.Contains($"libcurand.so.10 (cuRAND: found at {Path.Combine(libraries, "libcurand.so.10")} but not " +
            "loadable:", stderr);
        Assert.Contains($"and in {libraries}", stderr);

        // A damaged part is caught before anything is unpacked.
        File.WriteAllText(Path.Combine(device, Path.GetFileName(parts[0])), "damaged");
        (code, _, stderr) = Run(Path.Combine(device, "unpack.sh"), [Path.Combine(device, "again")]);
        Assert.Equal(1, code);
        Assert.Contains("missing or damaged", stderr);
        Assert.False(Directory.Exists(Path.Combine(device, "again", "bundle")));
    }

    private const string CudaProviderFile = "libonnxruntime_providers_cuda.so";

    private static readonly string[] NvidiaDependencies =
        ["libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudart.so.13", "libcuda.so.1"];

    [Fact]
    public void The_bundle_script_refuses_bad_arguments_in_one_line()
    {
        var script = Path.Combine(Repo, "runtime", "gpu-bundle", "make-bundle.sh");
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["--part-mib", "0"], "--part-mib '0'"),
            (["--xz-level", "fast"], "--xz-level 'fast': expected 0 … 9"),
            (["--colour"], "unknown argument '--colour'"),
        })
        {
            var (code, _, stderr) = Run(script, args);
            Assert.Equal(2, code);
            Assert.Contains(expected, stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
    }

    private static (int Code, string Out, string Err) Run(string file, string[] args,
        Dictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(file)!,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment.Remove("DIFFUSION_CUDA_LIBRARY_PATH");
        foreach (var (key, value) in environment ?? []) start.Environment[key] = value;
        // As on the device machine: nothing of the test host's .NET.
        foreach (var key in start.Environment.Keys.Where(k =>
            k.StartsWith("DOTNET_", StringComparison.Ordinal)).ToList())
            start.Environment.Remove(key);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr);
    }
}
