using System.Text.RegularExpressions;

namespace Diffusion.Cli;

/// <summary>
/// Library errors name the library's own parameters (<c>Steps</c>, <c>BatchSize</c>, <c>RelativeTolerance</c>); the
/// command line reports them with the flags a user typed (<c>--steps</c>, <c>--batch</c>, <c>--rtol</c>).
/// </summary>
public static partial class Flags
{
    /// <summary>Library parameter → command-line flag.</summary>
    public static IReadOnlyDictionary<string, string> ByParameter { get; } = new Dictionary<string, string>
    {
        ["Steps"] = "--steps", ["Count"] = "--count", ["BatchSize"] = "--batch", ["Guidance"] = "--guidance",
        ["ClassLabels"] = "--class", ["Class"] = "--class", ["Eta"] = "--eta", ["Snr"] = "--snr",
        ["RelativeTolerance"] = "--rtol", ["AbsoluteTolerance"] = "--atol", ["Resampling"] = "--jumps",
        ["Strength"] = "--strength", ["Sampler"] = "--sampler", ["InitialNoise"] = "--init-noise", ["Device"] = "--device",
        ["Budgets"] = "--nfe", ["Tolerances"] = "--rk45-tolerances", ["Spacing"] = "--spacing",
        ["SampleInput"] = "--sample-input", ["TimestepInput"] = "--timestep-input", ["ClassLabelsInput"] = "--class-input",
        ["OutputName"] = "--output-name", ["Config"] = "--config", ["KnownImages"] = "--image", ["Mask"] = "--mask",
        ["Reference images"] = "--reference", ["Feature classifier"] = "--classifier",
    };

    /// <summary><paramref name="message"/> with every library parameter name replaced by its flag.</summary>
    public static string Rename(string message) =>
        ParameterName().Replace(message, m => ByParameter.TryGetValue(m.Value, out var flag) ? flag : m.Value);

    [GeneratedRegex(@"(?<![\w'/.-])(Steps|Count|BatchSize|Guidance|ClassLabels|Class|Eta|Snr|RelativeTolerance|AbsoluteTolerance|Resampling|Strength|Sampler|InitialNoise|Device|Budgets|Tolerances|Spacing|SampleInput|TimestepInput|ClassLabelsInput|OutputName|Config|KnownImages|Mask|Reference images|Feature classifier)(?![\w'/.-])")]
    private static partial Regex ParameterName();
}
