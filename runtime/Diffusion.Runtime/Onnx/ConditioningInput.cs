using Microsoft.ML.OnnxRuntime.Tensors;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// A network input besides x_t and t — class labels, <c>encoder_hidden_states</c>, whatever a model family needs —
/// with its element type and its dimensions after the batch (−1 where the graph leaves one open).
/// </summary>
public sealed record ConditioningInput(string Name, TensorElementType ElementType, long[] EntryDimensions,
    string Description)
{
    /// <summary>Whether the input takes integers (int64 / int32), else floats (float32 / float16).</summary>
    public bool IsInteger => ElementType is TensorElementType.Int64 or TensorElementType.Int32;

    /// <summary>The element types a conditioning input may have.</summary>
    public static bool Supports(TensorElementType type) => type is TensorElementType.Float
        or TensorElementType.Float16 or TensorElementType.Int64 or TensorElementType.Int32;
}

/// <summary>The shape of one image in the network's space, [C, H, W] (pixels, or latents).</summary>
public readonly record struct ImageShape(int Channels, int Height, int Width)
{
    /// <summary>C·H·W, the values of one image.</summary>
    public int Size => Channels * Height * Width;

    /// <inheritdoc />
    public override string ToString() => $"[{Channels},{Height},{Width}]";
}
