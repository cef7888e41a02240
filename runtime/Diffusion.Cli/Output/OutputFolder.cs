using Diffusion.Runtime;

namespace Diffusion.Cli.Output;

/// <summary>A report's output folder, created (and proven writable) before the work that fills it.</summary>
public static class OutputFolder
{
    /// <summary>
    /// Creates <paramref name="path"/> if needed; a folder that cannot be made is one clear error naming
    /// <paramref name="option"/>.
    /// </summary>
    public static string Create(string path, string option)
    {
        try
        {
            Directory.CreateDirectory(path);
            var probe = Path.Combine(path, $".diffusion-write-test.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1,
                FileOptions.DeleteOnClose)) { }
            return path;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new DiffusionException($"{option} '{path}': cannot create or write the folder: {e.Message}", e);
        }
    }
}
