namespace Diffusion.Runtime.Imaging;

/// <summary>Text taken from a file, made safe to quote in a one-line message.</summary>
public static class Printable
{
    /// <summary>
    /// <paramref name="text"/> with control and non-ASCII characters shown as '?', cut at <paramref name="max"/>
    /// characters.
    /// </summary>
    public static string Of(string text, int max = 200)
    {
        var safe = new string(text.Trim().Select(c => c is >= ' ' and <= '~' ? c : '?').ToArray());
        return safe.Length <= max ? safe : safe[..max] + "…";
    }
}
