using System.Diagnostics;

namespace Diffusion.Runtime.Imaging;

/// <summary>Writes a file through a temporary name in the same folder, renamed into place only when complete.</summary>
public static class AtomicFile
{
    /// <summary>
    /// Calls <paramref name="write"/> on a stream to a temp file, then renames it to <paramref name="path"/>; on
    /// failure nothing is left behind.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder))
            throw new DiffusionException($"Cannot write '{path}': folder '{folder}' does not exist.");
        RemoveStaleTemporaries(full);
        var tmp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            // readable too: a writer may hash what it wrote
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TemporaryFiles.TryDelete(tmp);
            throw new DiffusionException($"Cannot write '{path}': {e.Message}", e);
        }
        catch
        {
            TemporaryFiles.TryDelete(tmp);
            throw;
        }
    }

    /// <summary>
    /// Removes the temporaries that writers of <paramref name="path"/> left when they were killed (their process is
    /// gone).
    /// </summary>
    public static void RemoveStaleTemporaries(string path)
    {
        var full = Path.GetFullPath(path);
        TemporaryFiles.RemoveStale(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.", ".tmp");
    }
}

/// <summary>
/// Temporary files and folders named PREFIX + process id + … + SUFFIX: the ones whose writer has died (killed, power
/// lost) are removed by the next writer of the same target, so an interrupted run leaves nothing behind for long.
/// </summary>
public static class TemporaryFiles
{
    /// <summary>
    /// Deletes entries of <paramref name="folder"/> named <paramref name="prefix"/>PID… <paramref name="suffix"/> whose
    /// process PID is gone.
    /// </summary>
    public static void RemoveStale(string folder, string prefix, string suffix = "")
    {
        if (!Directory.Exists(folder)) return;
        IEnumerable<string> entries;
        try { entries = Directory.EnumerateFileSystemEntries(folder, prefix + "*" + suffix).ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return; }
        foreach (var entry in entries)
        {
            var rest = Path.GetFileName(entry)[prefix.Length..];
            int digits = 0;
            while (digits < rest.Length && char.IsAsciiDigit(rest[digits])) digits++;
            if (digits == 0 || !int.TryParse(rest[..digits], out var pid)
                || (pid != Environment.ProcessId && IsRunning(pid)))
                continue;
            if (pid == Environment.ProcessId) continue; // ours, still in use
            TryDelete(entry);
        }
    }

    /// <summary>Whether process <paramref name="pid"/> exists.</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>Deletes a file or folder (recursively) if it exists; failures are ignored.</summary>
    public static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else File.Delete(path);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
