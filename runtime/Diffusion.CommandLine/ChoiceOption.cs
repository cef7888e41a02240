using System.CommandLine;
using Diffusion.Runtime.Imaging;

namespace Diffusion.CommandLine;

/// <summary>
/// An option whose value is one of an enum's members, written in lower case on the command line ("lanczos3"); any
/// other value is one usage error that lists the choices. Its help shows the choices and the default in that
/// spelling.
/// </summary>
public sealed class ChoiceOption<T> where T : struct, Enum
{
    /// <summary>The option (its value null when not given).</summary>
    public Option<T?> Option { get; }

    /// <summary>The value when the option is not given.</summary>
    public T Default { get; }

    /// <summary>
    /// An option <paramref name="name"/> taking a <typeparamref name="T"/>, <paramref name="fallback"/> unless given.
    /// </summary>
    public ChoiceOption(string name, string description, T fallback)
    {
        Default = fallback;
        Option = new Option<T?>(name)
        {
            Description = $"{description} (default {Name(fallback)}).",
            HelpName = string.Join("|", Enum.GetValues<T>().Select(Name)),
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
                foreach (var value in Enum.GetValues<T>())
                    if (string.Equals(Name(value), text, StringComparison.OrdinalIgnoreCase)) return value;
                result.AddError($"{name}: '{Printable.Of(text, 40)}': expected {Choices()}.");
                return null;
            },
        };
    }

    /// <summary>The value <paramref name="p"/> gives, or the default.</summary>
    public T Value(ParseResult p) => p.GetValue(Option) ?? Default;

    /// <summary>The command-line spelling of <paramref name="value"/>.</summary>
    public static string Name(T value) => value.ToString().ToLowerInvariant();

    /// <summary>"a, b or c": the choices.</summary>
    public static string Choices()
    {
        var names = Enum.GetValues<T>().Select(Name).ToArray();
        return names.Length == 1 ? names[0] : $"{string.Join(", ", names[..^1])} or {names[^1]}";
    }
}
