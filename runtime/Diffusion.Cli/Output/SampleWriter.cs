using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Cli.Output;

/// <summary>
/// Writes generated images where --out says: FILE.png, .jpg or .webp (a grid), FILE.npy (float32 [N,C,H,W]) or DIR/
/// (one PNG each).
/// The location is checked when the writer is made, before any sampling. Everything is written under a temporary
/// name and renamed into place: a failed or interrupted run leaves the previous output (if any) and nothing else. A
/// folder output is written whole into a temporary sibling folder that replaces DIR at the end, so it never mixes
/// files of two runs; a DIR that holds anything but an earlier run's NNNN.png files is refused.
/// </summary>
public sealed class SampleWriter
{
    private enum Kind { Grid, Npy, Folder }

    private readonly string _path;
    private readonly string _folder;
    private readonly Kind _kind;

    /// <summary>Image outputs are enlarged this many times (with <see cref="ScaleFilter"/>).</summary>
    public int Scale { get; }

    /// <summary>How outputs are enlarged: nearest neighbour unless told otherwise.</summary>
    public ResampleFilter ScaleFilter { get; init; } = ResampleFilter.Nearest;

    /// <summary>JPEG/WebP quality.</summary>
    public int Quality { get; init; } = ImageFile.DefaultQuality;

    /// <summary>Text stored in every image written (the parameters that made the images).</summary>
    public IReadOnlyDictionary<string, string> Parameters { get; set; } = new Dictionary<string, string>();

    /// <summary>
    /// The default enlargement: enough for 128 pixels on the shorter side (5× for 28×28, 1× from 128 up).
    /// </summary>
    public static int DefaultScale(int height, int width) =>
        Math.Max(1, (int)Math.Ceiling(128.0 / Math.Max(1, Math.Min(height, width))));

    /// <summary>Checks <paramref name="path"/> before any sampling is done, so a bad path fails fast.</summary>
    public SampleWriter(string path, int channels, int scale = 1)
    {
        if (scale is < 1 or > 64) throw new DiffusionArgumentException("--scale", $"must lie in 1…64, got {scale}.");
        Scale = scale;
        _path = path;
        bool folder = path.EndsWith('/') || path.EndsWith(Path.DirectorySeparatorChar) || Directory.Exists(path);
        var ext = Path.GetExtension(path).ToLowerInvariant();
        _kind = folder ? Kind.Folder
            : ImageFile.FormatOf(path) is not null ? Kind.Grid
            : ext == ".npy" ? Kind.Npy
            : throw new DiffusionArgumentException("--out",
                $"'{path}': expected an image file (.png, .jpg or .webp: a grid), a .npy file (float32 [N,C,H,W]) " +
                    $"or a folder ending in '/'.");
        if (_kind != Kind.Npy && channels is not (1 or 3 or 4))
            throw new DiffusionArgumentException("--out",
                $"'{path}': images hold 1, 3 or 4 channels but the model makes {channels}; write .npy instead.");
        _folder = Path.GetFullPath(_kind == Kind.Folder ? path
            : Path.GetDirectoryName(Path.GetFullPath(path))!).TrimEnd(Path.DirectorySeparatorChar);
        var parent = _kind == Kind.Folder ? Path.GetDirectoryName(_folder)
            ?? throw new DiffusionArgumentException("--out",
                $"'{path}': the file system's root cannot be replaced by an output folder; give a folder below it.")
            : _folder;
        CreateWritable(parent);
        if (_kind == Kind.Folder)
        {
            TemporaryFiles.RemoveStale(_folder);
            if (Foreign(_folder) is { } other)
                throw new DiffusionArgumentException("--out",
                    $"'{path}' already holds '{Path.GetFileName(other)}', which this command did not write; give a " +
                        $"new or empty folder (an earlier run's NNNN.png files are replaced).");
        }
        else if (Directory.Exists(path)) throw new DiffusionArgumentException("--out",
            $"'{path}' is a folder; end it with '/' to write one PNG per image.");
    }

    /// <summary>The first entry of <paramref name="folder"/> this command would not have written, if any.</summary>
    private static string? Foreign(string folder) => Directory.Exists(folder)
        ? Directory.EnumerateFileSystemEntries(folder).FirstOrDefault(e => !IsImageOfARun(e)) : null;

    private static bool IsImageOfARun(string entry)
    {
        var name = Path.GetFileName(entry);
        return File.Exists(entry) && name.Length >= 8 && name.EndsWith(".png", StringComparison.Ordinal)
            && name[..^4].All(char.IsAsciiDigit);
    }

    /// <summary>Creates <paramref name="folder"/> if needed and proves a file can be written there.</summary>
    private void CreateWritable(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
            var probe = Path.Combine(folder, $".diffusion-write-test.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1,
                FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusionException($"--out '{_path}': cannot write into folder '{folder}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Checks, before sampling, that <paramref name="count"/> images of this shape can be written as asked.
    /// </summary>
    public void Check(int count, int channels, int height, int width, int columns)
    {
        if (_kind == Kind.Grid)
        {
            var (w, h, _, _) = ImageGrid.Layout(count, channels, height, width, columns);
            if ((long)w * Scale * h * Scale * channels > Array.MaxLength)
                throw new DiffusionArgumentException("--scale",
                    $"{Scale}: the {w}×{h} grid would be larger than one image file holds; use a " +
                        $"smaller --scale or a folder.");
        }
    }

    /// <summary>Whether the output exists already (its earlier content will be replaced).</summary>
    public bool Replaces => _kind == Kind.Folder ? Directory.Exists(_folder)
        && Directory.EnumerateFileSystemEntries(_folder).Any() : File.Exists(_path);

    private Image8 Finish(Image8 image, int? index = null) =>
        ImageGrid.Scale(image, Scale, ScaleFilter) with
        {
            Text = index is int i ? new Dictionary<string, string>(Parameters) { ["image"] = i.ToString() }
                : Parameters,
        };

    /// <summary>Writes the images; returns what was written, for the summary line.</summary>
    public string Write(GenerationResult r, int columns)
    {
        switch (_kind)
        {
            case Kind.Npy:
                Npy.Save(_path, r.Images, r.Count, r.Channels, r.Height, r.Width);
                return _path;
            case Kind.Grid:
                ImageFile.Save(_path, Finish(ImageGrid.Tile(r.Images, r.Count, r.Channels, r.Height, r.Width, columns)),
                    Quality);
                return _path;
            default:
                WriteFolder(r);
                return $"{r.Count} PNG files in {_folder}{Path.DirectorySeparatorChar}";
        }
    }

    /// <summary>
    /// Writes the images into a marked temporary folder, then puts it in DIR's place; an earlier run's folder is moved
    /// aside (marked) and its NNNN.png files deleted. DIR is checked again just before: a file that appeared in it
    /// while sampling stops the replacement, so nothing this command did not write is ever deleted.
    /// </summary>
    private void WriteFolder(GenerationResult r)
    {
        string tmp;
        try
        {
            tmp = TemporaryFiles.CreateFolder(_folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiffusionException($"--out '{_path}': {e.Message}; nothing was written.", e);
        }
        try
        {
            for (int i = 0; i < r.Count; i++)
                ImageFile.Save(Path.Combine(tmp, $"{i:0000}.png"),
                    Finish(ImageGrid.ToImage(r.Image(i), r.Channels, r.Height, r.Width), i));
            TemporaryFiles.Unmark(tmp);
            string? old = null;
            if (Directory.Exists(_folder))
            {
                if (Foreign(_folder) is { } other)
                    throw new DiffusionException($"--out '{_path}' now holds '{Path.GetFileName(other)}', which " +
                        "this command did not write (it appeared while sampling); nothing was replaced.");
                old = TemporaryFiles.NameFor(_folder, "old");
                Directory.Move(_folder, old);
                TemporaryFiles.Mark(old);
            }
            try
            {
                Directory.Move(tmp, _folder);
            }
            catch when (old is not null)
            {
                TemporaryFiles.Unmark(old);
                Directory.Move(old, _folder); // put the earlier run's output back
                throw;
            }
            if (old is not null) RemoveEarlierRun(old);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DiffusionException)
        {
            TemporaryFiles.TryDelete(tmp);
            throw e as DiffusionException
                ?? new DiffusionException($"--out '{_path}': {e.Message}; nothing was written.", e);
        }
        catch
        {
            TemporaryFiles.TryDelete(tmp);
            throw;
        }
    }

    /// <summary>
    /// Deletes an earlier run's NNNN.png files and the marker, then the folder if nothing else is in it.
    /// </summary>
    private static void RemoveEarlierRun(string old)
    {
        try
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(old).Where(IsImageOfARun).ToList())
                File.Delete(entry);
            TemporaryFiles.Unmark(old);
            Directory.Delete(old); // not recursive: a file someone put there stays, in the hidden folder
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
