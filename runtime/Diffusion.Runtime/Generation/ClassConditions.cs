using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Generation;

/// <summary>
/// The conditioning of a class-conditional model: each image's label on its class-label input, and the null label
/// (<see cref="DiffusionModel.NumClasses"/>) for unconditional images and for the unconditional side of guidance.
/// </summary>
public static class ClassConditions
{
    /// <summary>
    /// Conditions for <paramref name="labels"/> (empty: unconditional, one: every image, else one per image) guided at
    /// <paramref name="guidance"/>; none for a model without a class-label input.
    /// </summary>
    public static Conditions For(DiffusionModel model, IReadOnlyList<int> labels, float guidance = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(labels);
        if (model.ClassLabelsInput is not { } input) return Conditions.None with { Guidance = guidance };
        long nullLabel = model.NumClasses;
        var conditional = labels.Count == 0 ? [nullLabel] : labels.Select(l => (long)l).ToArray();
        return new Conditions
        {
            Conditional = Condition.None.With(input, ConditioningTensor.FromIntegers(conditional, conditional.Length)),
            Unconditional = guidance == 1 ? null
                : Condition.None.With(input, ConditioningTensor.FromIntegers([nullLabel], 1)),
            Guidance = guidance,
        };
    }
}
