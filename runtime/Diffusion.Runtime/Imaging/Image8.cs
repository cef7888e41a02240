namespace Diffusion.Runtime.Imaging;

/// <summary>An 8-bit image: Height × Width × Channels bytes, interleaved (1 = gray, 3 = RGB, 4 = RGBA).</summary>
public sealed record Image8(int Width, int Height, int Channels, byte[] Pixels)
{
    /// <summary>
    /// Text stored with the image (keyword → text: PNG text chunks; the "parameters" entry also as JPEG/WebP EXIF
    /// UserComment), e.g. the parameters that made it.
    /// </summary>
    public IReadOnlyDictionary<string, string> Text { get; init; } = new Dictionary<string, string>();
}

/// <summary>One image as a model reads it: [C,H,W] values in [−1, 1].</summary>
public sealed record ImageTensor(int Channels, int Height, int Width, float[] Data);

/// <summary>What an image file holds, from its header: its format, its size upright, whether it stores gray.</summary>
public sealed record ImageFileInfo(string Format, int Width, int Height, bool Gray);
