using System.Diagnostics;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// Runs Debian's python3 (with python3-onnx and numpy, installed by ./test.sh) as an independent reference.
/// </summary>
internal static class PythonReference
{
    public const string Interpreter = "/usr/bin/python3";

    public static string Run(string script, params string[] args)
    {
        Assert.True(File.Exists(Interpreter),
            $"{Interpreter} is missing: ./test.sh installs python3-onnx (apt-get install python3-onnx).");
        var start = new ProcessStartInfo(Interpreter) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"python failed: {stderr}");
        return stdout.Result.Trim();
    }
}
