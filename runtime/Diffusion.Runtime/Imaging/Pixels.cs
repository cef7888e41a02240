namespace Diffusion.Runtime.Imaging;

/// <summary>
/// The one mapping between pixels and the models' data range: v = p/127.5 − 1 ∈ [−1, 1] for bytes (p/32767.5 − 1 for
/// 16-bit samples), and back (rounded, clamped).
/// </summary>
public static class Pixels
{
    /// <summary>A byte 0…255 as a model value in [−1, 1].</summary>
    public static float ToModel(byte pixel) => pixel / 127.5f - 1;

    /// <summary>
    /// A 16-bit sample 0…65535 as a model value in [−1, 1] (v/32767.5 − 1: the same line, finer steps).
    /// </summary>
    public static float ToModel(ushort sample) => sample / 32767.5f - 1;

    /// <summary>A 16-bit sample rounded to 8 bits (v/257: 65535 → 255, 257 → 1).</summary>
    public static byte ToByte(ushort sample) => (byte)((sample + 128) / 257);

    /// <summary>A model value as a byte (values outside [−1, 1] are clamped).</summary>
    public static byte ToByte(float value) => (byte)Math.Clamp((int)MathF.Round((value + 1) * 127.5f), 0, 255);
}
