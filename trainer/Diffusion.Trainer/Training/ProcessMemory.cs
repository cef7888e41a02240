using System.Globalization;

namespace Diffusion.Trainer.Training;

/// <summary>
/// This process's memory as Linux reports it (/proc/self/status), in MiB; NaN where it is not available.
/// </summary>
public static class ProcessMemory
{
    /// <summary>VmHWM: the peak resident set.</summary>
    public static double PeakResidentMiB() => Read("VmHWM:");

    /// <summary>VmRSS: the current resident set.</summary>
    public static double ResidentMiB() => Read("VmRSS:");

    private static double Read(string key)
    {
        if (!File.Exists("/proc/self/status")) return double.NaN;
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        return line is null ? double.NaN
            : double.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
    }
}
