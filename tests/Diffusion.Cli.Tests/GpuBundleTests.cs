using System.Diagnostics;

namespace Diffusion.Cli.Tests;

/// <summary>
/// The GPU bundle (runtime/gpu-bundle/make-bundle.sh) built for real — self-contained publish against ONNX Runtime
/// 1.29 from npm — with a stand-in provider library instead of the 180 MB CUDA one: the parts fit the carry limit,
/// unpack.sh puts them back together, the bundled CLI runs on the CPU on its own .NET runtime, and asking it
/// for CUDA through the bundled (stand-in) provider is one clear line.
/// </summary>
public class GpuBundleTests
{
    private static string Repo => TestFolders.Repository;

    [Fact]
    public void The_bundle_builds_in_parts_unpacks_and_runs_on_its_own_runtime()
    {
        var folder = TestFolders.Create("gpu-bundle");
        var output = Path.Combine(folder, "out");
        var standIn = Path.Combine(folder, "not-a-provider.so");
        File.Copy("/lib/x86_64-linux-gnu/libm.so.6", standIn);
        var (code, stdout, stderr) = Run(Path.Combine(Repo, "runtime", "gpu-bundle", "make-bundle.sh"),
            ["--out", output, "--part-mib", "16", "--xz-level", "0", "--provider", standIn]);
        Assert.True(code == 0, stdout + stderr);

        var parts = Directory.GetFiles(output, "bundle.tar.xz.part-*").Order().ToArray();
        Assert.True(parts.Length >= 2, $"{parts.Length} part(s): the bundle should need several 16 MiB parts");
        Assert.All(parts, p =>
            Assert.True(new FileInfo(p).Length <= 16 << 20, $"{p} is {new FileInfo(p).Length} bytes"));

        // Only the parts, their checksums and unpack.sh travel.
        var device = Path.Combine(folder, "device");
        Directory.CreateDirectory(device);
        foreach (var f in parts.Append(Path.Combine(output, "SHA256SUMS")).Append(Path.Combine(output, "unpack.sh")))
            File.Copy(f, Path.Combine(device, Path.GetFileName(f)));
        (code, stdout, stderr) = Run(Path.Combine(device, "unpack.sh"), [Path.Combine(device, "opt")]);
        Assert.True(code == 0, stdout + stderr);
        var runner = Path.Combine(device, "opt", "bundle", "run-gpu.sh");
        Assert.Contains("ONNX Runtime 1.29.0", File.ReadAllText(Path.Combine(device, "opt", "bundle", "VERSION")));

        // The bundled CLI on the CPU: its own .NET runtime (self-contained: the SDK's is not used) and ONNX Runtime
        // 1.29's core.
        Assert.True(File.Exists(Path.Combine(device, "opt", "bundle", "app", "libcoreclr.so")),
            "the publish is not self-contained");
        (code, stdout, stderr) = Run(runner, ["info"]);
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("1.29.0", stdout);
        (code, _, stderr) = Run(runner,
            ["sample", "--model", Path.Combine(device, "opt", "bundle", "app", "models", "gaussian", "gaussian.onnx"),
                "-n", "1", "--steps", "5", "--out", Path.Combine(folder, "cpu.png")]);
        Assert.True(code == 0, stderr);

        // CUDA through the bundled provider (here the stand-in): one line naming it and what is wrong.
        (code, _, stderr) = Run(runner,
            ["sample", "--device", "cuda", "-n", "1", "--out", Path.Combine(folder, "gpu.png")]);
        Assert.Equal(1, code);
        Assert.Contains("libonnxruntime_providers_cuda.so", stderr);
        Assert.Contains("CreateEpFactories", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.False(File.Exists(Path.Combine(folder, "gpu.png")));

        // A damaged part is caught before anything is unpacked.
        File.WriteAllText(Path.Combine(device, Path.GetFileName(parts[0])), "damaged");
        (code, _, stderr) = Run(Path.Combine(device, "unpack.sh"), [Path.Combine(device, "again")]);
        Assert.Equal(1, code);
        Assert.Contains("missing or damaged", stderr);
        Assert.False(Directory.Exists(Path.Combine(device, "again", "bundle")));
    }

    [Fact]
    public void The_bundle_script_refuses_bad_arguments_in_one_line()
    {
        var script = Path.Combine(Repo, "runtime", "gpu-bundle", "make-bundle.sh");
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["--part-mib", "0"], "--part-mib '0'"),
            (["--xz-level", "fast"], "--xz-level 'fast': expected 0 … 9"),
            (["--provider", "/nowhere.so"], "--provider '/nowhere.so' does not exist"),
            (["--colour"], "unknown argument '--colour'"),
        })
        {
            var (code, _, stderr) = Run(script, args);
            Assert.Equal(2, code);
            Assert.Contains(expected, stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
    }

    private static (int Code, string Out, string Err) Run(string file, string[] args)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(file)!,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment.Remove("DIFFUSION_ORT_LIBRARY");
        start.Environment.Remove("DIFFUSION_CUDA_PROVIDER");
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
