using System.Diagnostics;

namespace Diffusion.Tests;

/// <summary>
/// Runs a shell script where it may mount a small tmpfs: as root directly, else in a user + mount namespace.
/// </summary>
public static class TinyDisk
{
    /// <summary>Runs <paramref name="script"/> with sh; Ok is false when no tmpfs could be mounted.</summary>
    public static (bool Ok, string Output) RunScript(string script)
    {
        foreach (var (file, args) in new[]
        {
            ("unshare", new[] { "--user", "--map-root-user", "--mount", "sh", "-c", script }),
                ("unshare", new[] { "--mount", "sh", "-c", script }),
        })
        {
            var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) start.ArgumentList.Add(a);
            try
            {
                using var p = Process.Start(start)!;
                var stdout = p.StandardOutput.ReadToEndAsync();
                var stderr = p.StandardError.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode == 0) return (true, stdout.Result);
                if (!stderr.Contains("mount", StringComparison.OrdinalIgnoreCase)
                    && !stderr.Contains("unshare", StringComparison.OrdinalIgnoreCase))
                    return (false, stdout.Result + stderr);
            }
            catch (System.ComponentModel.Win32Exception) { }
        }
        return (false, "unshare could not mount a tmpfs");
    }
}
