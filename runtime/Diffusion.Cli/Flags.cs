namespace Diffusion.Cli;

/// <summary>
/// Library errors name the library's own parameters as data (<see cref="Runtime.DiffusionException.Parameter"/>:
/// <c>Steps</c>, <c>BatchSize</c>, <c>RelativeTolerance</c>); this command line reports them with the flags a user
/// typed (<c>--steps</c>, <c>--batch</c>, <c>--rtol</c>).
/// </summary>
public static class Flags
{
    /// <summary>Library parameter → command-line flag.</summary>
    public static IReadOnlyDictionary<string, string> ByParameter { get; } = new Dictionary<string, string>
    {
        // GenerationRequest and SamplerOptions
        ["Sampler"] = "--sampler", ["Steps"] = "--steps", ["Count"] = "--count", ["BatchSize"] = "--batch",
        ["Guidance"] = "--guidance", ["ClassLabels"] = "--class", ["Class"] = "--class", ["Strength"] = "--strength",
        ["InitialNoise"] = "--init-noise", ["InitialImages"] = "--image", ["KnownImages"] = "--image", ["Mask"] = "--mask",
        ["KnownImageNoise"] = "--known-noise",
        ["Prompt"] = "--prompt", ["NegativePrompt"] = "--negative-prompt", ["Width"] = "--width",
        ["Height"] = "--height", ["Spacing"] = "--spacing", ["KarrasSigmas"] = "--karras", ["Eta"] = "--eta", ["Snr"] = "--snr",
        ["RelativeTolerance"] = "--rtol", ["AbsoluteTolerance"] = "--atol", ["Resampling"] = "--jumps",
        // ModelOptions and SessionSettings
        ["Config"] = "--config", ["SampleInput"] = "--sample-input", ["TimestepInput"] = "--timestep-input",
        ["ClassLabelsInput"] = "--class-input", ["OutputName"] = "--output-name", ["Device"] = "--device",
        ["CudaGraphs"] = "--cuda-graphs", ["CudaOptions"] = "--cuda-option",
        ["IntraOpThreads"] = "--threads", ["InterOpThreads"] = "--inter-threads",
        // Evaluation and benchmarks
        ["Reference"] = "--reference", ["ReferenceLabels"] = "--reference", ["Classifier"] = "--classifier",
        ["seeds"] = "--seeds", ["Samplers"] = "--samplers", ["Budgets"] = "--nfe", ["Tolerances"] = "--rk45-tolerances",
        ["HeadlineCount"] = "--headline-count", ["Resume"] = "--resume",
        // Imaging
        ["factor"] = "--scale", ["columns"] = "--columns",
    };
}
