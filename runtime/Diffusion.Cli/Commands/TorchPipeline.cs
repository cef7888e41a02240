using System.Diagnostics;
using System.Globalization;
using Diffusion.Runtime;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>bench-runtime --torch-pipeline</c>: diffusers' StableDiffusionPipeline on torch for the request bench-runtime
/// times (interop/diffusers/bench_sd_pipeline.py, in its own process, after ours), on the folder's architecture.
/// </summary>
internal sealed class TorchPipeline(string python, string diffusersSource, string folder, int threads)
{
    private static string Script =>
        Path.Combine(AppContext.BaseDirectory, "interop", "diffusers", "bench_sd_pipeline.py");

    /// <summary>Refuses, in one line, what cannot run before any timing starts.</summary>
    public static void Check(bool textToImage, string diffusersSource, string python)
    {
        if (!textToImage)
            throw new DiffusionArgumentException("--torch-pipeline", "applies to a text-to-image folder " +
                "(model_index.json, tokenizer/, text_encoder/, unet/, vae_decoder/).");
        if (!File.Exists(Path.Combine(diffusersSource, "diffusers", "__init__.py")))
            throw new DiffusionArgumentException("--torch-pipeline", $"'{diffusersSource}' is not diffusers' src " +
                "folder (it holds no diffusers/__init__.py).");
        if (!File.Exists(python))
            throw new DiffusionArgumentException("--python", $"'{python}' does not exist; install Debian's " +
                "python3-torch (apt-get install python3-torch libopenblas0-pthread).");
    }

    /// <summary>The median ms of <paramref name="reps"/> torch requests, and what torch ran on.</summary>
    public (double Ms, string Banner) RequestMs(int reps, CancellationToken cancellation)
    {
        var start = new ProcessStartInfo(python)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            Script, folder, "--diffusers", diffusersSource, "--repeat", $"{reps}",
            "--threads", $"{(threads == 0 ? Environment.ProcessorCount : threads)}",
        })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)
            ?? throw new DiffusionException($"--python '{python}' could not be started.");
        using var kill = cancellation.Register(() => process.Kill(entireProcessTree: true));
        var error = process.StandardError.ReadToEndAsync(cancellation);
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        cancellation.ThrowIfCancellationRequested();
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var result = lines.FirstOrDefault(l => l.StartsWith("torch request ms: ", StringComparison.Ordinal));
        if (process.ExitCode != 0 || result is null)
        {
            var last = error.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "no output";
            throw new DiffusionException($"--torch-pipeline: {Path.GetFileName(Script)} failed " +
                $"(exit {process.ExitCode}): {last.Trim()}");
        }
        if (lines[0].Contains("REFERENCE BLAS", StringComparison.Ordinal))
            throw new DiffusionException($"--python '{python}': torch runs on the reference BLAS (libblas3), not a " +
                "fair baseline; install libopenblas0-pthread.");
        double ms = double.Parse(result["torch request ms: ".Length..].Split(' ')[0], CultureInfo.InvariantCulture);
        return (ms, lines[0]);
    }
}
