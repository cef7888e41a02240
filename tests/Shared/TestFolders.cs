using System.Collections.Concurrent;

namespace Diffusion.Tests;

/// <summary>
/// Temporary folders for tests, removed when the test process exits (so a run leaves nothing in /tmp).
/// </summary>
public static class TestFolders
{
    private static readonly ConcurrentBag<string> Created = [];

    static TestFolders() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var folder in Created)
            try { Directory.Delete(folder, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    };

    /// <summary>The repository's root (the folder with Diffusion.sln above the test binaries).</summary>
    public static string Repository
    {
        get
        {
            var dir = AppContext.BaseDirectory;
            while (!File.Exists(Path.Combine(dir, "Diffusion.sln")))
                dir = Path.GetDirectoryName(dir)
                    ?? throw new InvalidOperationException("the repository root was not found");
            return dir;
        }
    }

    /// <summary>A new empty folder under the system temp folder, named <paramref name="prefix"/>-GUID.</summary>
    public static string Create(string prefix)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        Created.Add(folder);
        return folder;
    }

    /// <summary>
    /// A path for a folder that does not exist yet (the code under test creates it); removed at exit too.
    /// </summary>
    public static string Reserve(string prefix)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Created.Add(folder);
        return folder;
    }
}
