using System.CommandLine;

namespace Diffusion.CommandLine;

/// <summary>
/// An option whose value is one of an enum's members, written in lower case on the command line ("lanczos3"); any
/// other value is one usage error that lists the choices.
/// </summary>
public static class ChoiceOption
{
    /// <summary>The command-line spelling of <paramref name="value"/>.</summary>
    public static string Name<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();

    /// <summary>"a, b or c": the choices of <typeparamref name="T"/>.</summary>
    public static string Choices<T>() where T : struct, Enum
    {
        var names = Enum.GetValues<T>().Select(Name).ToArray();
        return names.Length == 1 ? names[0] : $"{string.Join(", ", names[..^1])} or {names[^1]}";
    }

    /// <summary>
    /// An option <paramref name="name"/> taking a <typeparamref name="T"/>, <paramref name="fallback"/> unless given.
    /// </summary>
    public static Option<T> Create<T>(string name, string description, T fallback) where T : struct, Enum => new(name)
    {
        Description = $"{description} ({Choices<T>()}; default {Name(fallback)}).",
        DefaultValueFactory = _ => fallback,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            foreach (var value in Enum.GetValues<T>())
                if (string.Equals(Name(value), text, StringComparison.OrdinalIgnoreCase)) return value;
            result.AddError($"{name}: '{Printable(text)}': expected {Choices<T>()}.");
            return fallback;
        },
    };

    private static string Printable(string text) =>
        text.Length > 40 ? text[..40] + "…" : new string(text.Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
