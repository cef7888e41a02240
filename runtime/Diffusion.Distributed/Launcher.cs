using System.Diagnostics;
using System.Reflection;

namespace Diffusion.Distributed;

/// <summary>
/// <c>--processes N</c> (<c>train</c>, <c>sample</c>, <c>eval</c>): starts N copies of this app under Open MPI's
/// <c>mpirun</c> on this machine (the same command line without --processes), passes their output through and returns
/// mpirun's exit code.
/// </summary>
public static class Launcher
{
    /// <summary>
    /// Runs <paramref name="arguments"/> (the command line from the command's name on) as <paramref name="processes"/>
    /// MPI ranks; <paramref name="quiet"/> keeps mpirun's own banners out of the output (the ranks then say what
    /// failed, in one line).
    /// </summary>
    public static async Task<int> RunUnderMpirun(int processes, string[] arguments, TextWriter output, TextWriter error,
        CancellationToken cancellation, bool quiet = false)
    {
        var mpirun = FindMpirun()
            ?? throw new DiffusionException("--processes",
                "needs Open MPI's mpirun, which is not installed: apt-get install openmpi-bin libopenmpi-dev.");
        var start = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in MpirunArguments(processes)) start.ArgumentList.Add(a);
        if (quiet) start.ArgumentList.Add("--quiet");
        // mpirun gives each rank a terminal of its own and forwards what it prints: without a terminal type .NET
        // writes no terminal set-up codes into that output.
        start.Environment["TERM"] = "dumb";
        foreach (var a in SelfCommand()) start.ArgumentList.Add(a);
        for (int i = 0; i < arguments.Length; i++)
        {
            if (arguments[i] == "--processes") { i++; continue; }
            if (arguments[i].StartsWith("--processes=", StringComparison.Ordinal)) continue;
            start.ArgumentList.Add(arguments[i]);
        }
        using var process = Process.Start(start) ?? throw new DiffusionException($"Could not start {mpirun}.");
        var copyOut = Pump(process.StandardOutput, output);
        var copyErr = Pump(process.StandardError, error);
        try
        {
            await process.WaitForExitAsync(cancellation);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        await Task.WhenAll(copyOut, copyErr);
        return process.ExitCode;
    }

    /// <summary>
    /// mpirun's options for N ranks here: root allowed (containers), no core binding (libtorch spreads its threads), N
    /// may exceed the cores.
    /// </summary>
    public static IEnumerable<string> MpirunArguments(int processes)
    {
        yield return "-np";
        yield return processes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        yield return "--bind-to";
        yield return "none";
        yield return "--oversubscribe";
        if (Environment.UserName == "root") yield return "--allow-run-as-root";
    }

    /// <summary>How to start this app again: the apphost, or dotnet with the app's assembly.</summary>
    public static IEnumerable<string> SelfCommand()
    {
        var host = Environment.ProcessPath ?? "dotnet";
        yield return host;
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
            yield return (Assembly.GetEntryAssembly() ?? typeof(Launcher).Assembly).Location;
    }

    /// <summary>
    /// Threads per rank when --threads is not given: the cores shared by the ranks on this machine.
    /// </summary>
    public static int ThreadsPerRank() => Math.Max(1, Environment.ProcessorCount / LocalSize);

    /// <summary>
    /// This rank's index among the ranks on its machine (0 outside mpirun): its GPU, where there are several.
    /// </summary>
    public static int LocalRank => Number("OMPI_COMM_WORLD_LOCAL_RANK") ?? 0;

    /// <summary>The number of ranks on this machine (1 outside mpirun).</summary>
    public static int LocalSize => Number("OMPI_COMM_WORLD_LOCAL_SIZE") is int n and > 0 ? n : 1;

    private static int? Number(string variable) =>
        int.TryParse(Environment.GetEnvironmentVariable(variable), out var n) && n >= 0 ? n : null;

    private static string? FindMpirun() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);

    private static async Task Pump(StreamReader from, TextWriter to)
    {
        while (await from.ReadLineAsync() is { } line) await to.WriteLineAsync(line);
    }
}
