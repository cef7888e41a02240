using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Cli.Output;

/// <summary>Writes generated images where --out says: FILE.png (a grid), FILE.npy (float32 [N,C,H,W]) or DIR/ (one PNG each).</summary>
public sealed class SampleWriter
{
    private enum Kind { Grid, Npy, Folder }

    private readonly string _path;
    private readonly Kind _kind;

    /// <summary>Checks <paramref name="path"/> before any sampling is done, so a bad path fails fast.</summary>
    public SampleWriter(string path, int channels)
    {
        _path = path;
        bool folder = path.EndsWith('/') || path.EndsWith(Path.DirectorySeparatorChar) || Directory.Exists(path);
        var ext = Path.GetExtension(path).ToLowerInvariant();
        _kind = folder ? Kind.Folder
            : ext == ".png" ? Kind.Grid
            : ext == ".npy" ? Kind.Npy
            : throw new DiffusionException($"--out '{path}': expected a .png file (image grid), a .npy file (float32 [N,C,H,W]) or a folder ending in '/'.");
        if (_kind != Kind.Npy && channels is not (1 or 3 or 4))
            throw new DiffusionException($"--out '{path}': PNG holds 1, 3 or 4 channels but the model makes {channels}; write .npy instead.");
    }

    /// <summary>Writes the images; returns what was written, for the summary line.</summary>
    public string Write(GenerationResult r, int columns)
    {
        var folder = _kind == Kind.Folder ? _path : Path.GetDirectoryName(Path.GetFullPath(_path))!;
        try { Directory.CreateDirectory(folder); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DiffusionException($"--out '{_path}': cannot create folder '{folder}': {e.Message}", e); }
        switch (_kind)
        {
            case Kind.Npy:
                Npy.Save(_path, r.Images, r.Count, r.Channels, r.Height, r.Width);
                return _path;
            case Kind.Grid:
                Png.Save(_path, ImageGrid.Tile(r.Images, r.Count, r.Channels, r.Height, r.Width, columns));
                return _path;
            default:
                for (int i = 0; i < r.Count; i++)
                    Png.Save(Path.Combine(folder, $"{i:0000}.png"), ImageGrid.ToImage(r.Image(i), r.Channels, r.Height, r.Width));
                return $"{r.Count} PNG files in {folder}";
        }
    }
}
