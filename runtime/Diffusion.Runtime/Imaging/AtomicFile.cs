using System.Diagnostics;
using System.Text.RegularExpressions;

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
        var tmp = TemporaryFiles.NameFor(full);
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
    public static void RemoveStaleTemporaries(string path) => TemporaryFiles.RemoveStale(path);
}

/// <summary>
/// The names of temporary and backup files and folders, and their removal once their writer is gone. A name is
/// <c>.{target}~diffusion-{kind}.{pid}.{token}</c>: hidden, tagged, the writer's process id and a 128-bit random token,
/// so it cannot be a name a user chose; a folder also holds a <see cref="Marker"/> file with its token while it is
/// ours. The next writer of the same target removes only entries of that exact form whose process has died — and a
/// folder only if its marker matches.
/// </summary>
public static partial class TemporaryFiles
{
    /// <summary>The file a temporary or backup folder holds while it is ours: its token.</summary>
    public const string Marker = ".diffusion-temporary";

    [GeneratedRegex(@"^\.(?<target>.+)~diffusion-(?<kind>tmp|old)\.(?<pid>[0-9]{1,10})\.(?<token>[0-9a-f]{32})$")]
    private static partial Regex NamePattern();

    /// <summary>A new name beside <paramref name="target"/> for a temporary ("tmp") or a backup ("old").</summary>
    public static string NameFor(string target, string kind = "tmp")
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        return Path.Combine(Path.GetDirectoryName(full)!,
            $".{Path.GetFileName(full)}~diffusion-{kind}.{Environment.ProcessId}.{Guid.NewGuid():N}");
    }

    /// <summary>The file-name pattern of <paramref name="target"/>'s temporaries (for listing them).</summary>
    public static string Pattern(string target) => $".{Path.GetFileName(target.TrimEnd('/'))}~diffusion-*";

    /// <summary>Creates a temporary folder (<see cref="NameFor"/>) marked as ours.</summary>
    public static string CreateFolder(string target, string kind = "tmp")
    {
        var folder = NameFor(target, kind);
        Directory.CreateDirectory(folder);
        Mark(folder);
        return folder;
    }

    /// <summary>Marks <paramref name="folder"/> (named by <see cref="NameFor"/>) as ours.</summary>
    public static void Mark(string folder) =>
        File.WriteAllText(Path.Combine(folder, Marker),
            NamePattern().Match(Path.GetFileName(folder)).Groups["token"].Value);

    /// <summary>Removes the marker, before the folder takes its target's place.</summary>
    public static void Unmark(string folder) => File.Delete(Path.Combine(folder, Marker));

    /// <summary>
    /// Deletes the temporaries and backups of <paramref name="target"/> whose writer has died: entries of exactly the
    /// <see cref="NameFor"/> form, and folders only while they hold their <see cref="Marker"/>.
    /// </summary>
    public static void RemoveStale(string target)
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        var folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder)) return;
        List<string> entries;
        try { entries = Directory.EnumerateFileSystemEntries(folder, Pattern(full)).ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return; }
        foreach (var entry in entries)
        {
            var match = NamePattern().Match(Path.GetFileName(entry));
            if (!match.Success || match.Groups["target"].Value != Path.GetFileName(full)
                || !int.TryParse(match.Groups["pid"].Value, out var pid)
                || pid == Environment.ProcessId || IsRunning(pid))
                continue;
            if (Directory.Exists(entry))
            {
                var marker = Path.Combine(entry, Marker);
                try
                {
                    if (!File.Exists(marker) || File.ReadAllText(marker) != match.Groups["token"].Value) continue;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            }
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
