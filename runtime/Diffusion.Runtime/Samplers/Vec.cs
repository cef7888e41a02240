using System.Numerics.Tensors;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// The few vector updates samplers are made of, in float32 through TensorPrimitives (destination may alias an input).
/// </summary>
public static class Vec
{
    /// <summary>dst = a·x + b·y.</summary>
    public static void Axpby(Span<float> dst, double a, ReadOnlySpan<float> x, double b, ReadOnlySpan<float> y)
    {
        if (dst.Overlaps(y) && !dst.Overlaps(x))
        {
            TensorPrimitives.Multiply(y, (float)b, dst);
            TensorPrimitives.MultiplyAdd(x, (float)a, dst, dst);
            return;
        }
        TensorPrimitives.Multiply(x, (float)a, dst);
        TensorPrimitives.MultiplyAdd(y, (float)b, dst, dst);
    }

    /// <summary>dst += a·x.</summary>
    public static void AddScaled(Span<float> dst, double a, ReadOnlySpan<float> x) =>
        TensorPrimitives.MultiplyAdd(x, (float)a, dst, dst);

    /// <summary>dst = a·x.</summary>
    public static void Scale(Span<float> dst, double a, ReadOnlySpan<float> x) =>
        TensorPrimitives.Multiply(x, (float)a, dst);
}
