using System.CommandLine;

namespace Diffusion.CommandLine;

/// <summary>
/// How both command lines report a command line they cannot parse: one line per problem and a pointer to the help,
/// not the whole help text.
/// </summary>
public static class UsageErrors
{
    /// <summary>
    /// Writes the errors of <paramref name="parsed"/> (if any) to <paramref name="error"/>; returns whether there were
    /// any.
    /// </summary>
    public static bool Report(ParseResult parsed, Command root, TextWriter error)
    {
        if (parsed.Errors.Count == 0) return false;
        // A mistyped command is reported as unrecognised; the "command was not provided" that comes with it is noise.
        var errors = parsed.Errors.Count > 1
            ? parsed.Errors.Where(e => !e.Message.StartsWith("Required command", StringComparison.Ordinal))
            : parsed.Errors;
        foreach (var e in errors) error.WriteLine($"error: {e.Message}");
        var command = parsed.CommandResult.Command;
        error.WriteLine($"see: diffusion {(command == root ? "" : command.Name + " ")}--help");
        return true;
    }
}
