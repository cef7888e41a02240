namespace Diffusion.Runtime.Imaging;

/// <summary>
/// The one mapping between 8-bit pixels and the models' data range: v = p/127.5 − 1 ∈ [−1, 1], and back (rounded,
/// clamped).
/// </summary>
public static class Pixels
{
    /// <summary>A byte 0…255 as a model value in [−1, 1].</summary>
    public static float ToModel(byte pixel) => pixel / 127.5f - 1;

    /// <summary>A model value as a byte (values outside [−1, 1] are clamped).</summary>
    public static byte ToByte(float value) => (byte)Math.Clamp((int)MathF.Round((value + 1) * 127.5f), 0, 255);
}
