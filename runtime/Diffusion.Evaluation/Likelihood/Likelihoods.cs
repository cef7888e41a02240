using Diffusion.Runtime;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Evaluation.Likelihood;

/// <summary>What both likelihoods ask of a model and its data.</summary>
internal static class Likelihoods
{
    /// <summary>
    /// The data must be images of the model's shape; a class-conditional model is measured unconditionally, through
    /// its null label, so it needs one.
    /// </summary>
    public static void CheckModel(DiffusionModel model, LikelihoodData data)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Shape != model.Shape)
            throw new DiffusionException("--data", $"'{data.Source}' holds {data.Shape} images; model " +
                $"'{model.Source}' takes {model.Shape}.");
        if (model.NumClasses > 0 && !model.HasNullClass)
            throw new DiffusionException("--model", $"'{model.Source}' is class-conditional without a null label, " +
                "so it defines no unconditional p(x) to measure.");
        if (model.ConditioningInputs.Any(i => i.Name != model.ClassLabelsInput))
            throw new DiffusionException("--model", $"'{model.Source}' takes conditioning " +
                $"({string.Join(", ", model.ConditioningInputs.Select(i => i.Name))}) that a likelihood of images " +
                    "alone cannot give.");
    }
}
