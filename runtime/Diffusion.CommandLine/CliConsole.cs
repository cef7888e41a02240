using Diffusion.Runtime;
using Spectre.Console;

namespace Diffusion.CommandLine;

/// <summary>
/// Where commands write — plain text writers plus a Spectre console for tables and progress bars — and how their
/// errors are reported: a library error that names a parameter (<see cref="DiffusionException.Parameter"/>) is shown
/// with the flag <paramref name="flags"/> maps it to.
/// </summary>
public sealed class CliConsole(TextWriter output, TextWriter error, IReadOnlyDictionary<string, string> flags)
{
    /// <summary>Standard output.</summary>
    public TextWriter Out { get; } = output;
    /// <summary>Standard error.</summary>
    public TextWriter Error { get; } = error;
    /// <summary>A Spectre console over <see cref="Out"/> (colour and live progress only on a real terminal).</summary>
    public IAnsiConsole Ansi { get; } = AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(output),
        Interactive = IsTerminal(output) ? InteractionSupport.Yes : InteractionSupport.No,
        Ansi = IsTerminal(output) ? AnsiSupport.Detect : AnsiSupport.No,
    });

    /// <summary>
    /// Standard output on a terminal — not a rank under mpirun, whose output mpirun forwards (through a terminal of its
    /// own, so that the rank would otherwise think it has one).
    /// </summary>
    private static bool IsTerminal(TextWriter output) => ReferenceEquals(output, Console.Out)
        && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is null;

    /// <summary>Whether live progress bars make sense (an interactive terminal).</summary>
    public bool Interactive => Ansi.Profile.Capabilities.Interactive;

    /// <summary>
    /// The flag a library parameter is given by on this command line; a name that is a flag already (the CLI's own
    /// errors), or one without a flag, is shown as it is.
    /// </summary>
    public string Flag(string parameter) => flags.TryGetValue(parameter, out var flag) ? flag : parameter;

    /// <summary>
    /// Runs a command body. Handled errors become one line on stderr and an exit code that says which kind they were:
    /// <see cref="ExitCodes.Usage"/> for invalid arguments, <see cref="ExitCodes.Failure"/> for files, models, data and
    /// I/O, <see cref="ExitCodes.Cancelled"/> for Ctrl-C; anything else is a bug and says so
    /// (<see cref="ExitCodes.InternalError"/>).
    /// </summary>
    public async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (FailedElsewhere e)
        {
            return e.ExitCode;
        }
        catch (Exception e)
        {
            await Error.WriteLineAsync(e switch
            {
                DiffusionException d =>
                    $"error: {OneLine(d.Parameter is { } parameter ? $"{Flag(parameter)}: {d.Problem}" : d.Message)}",
                IOException or UnauthorizedAccessException or InvalidDataException => $"error: {OneLine(e.Message)}",
                OperationCanceledException => "cancelled; nothing was written.",
                _ => $"internal error (a bug in Diffusion for .NET; please report it with this output): {e}",
            });
            return ExitCodeOf(e);
        }
    }

    /// <summary>The exit code <see cref="Guard"/> ends with for <paramref name="e"/>.</summary>
    public static int ExitCodeOf(Exception e) => e switch
    {
        FailedElsewhere f => f.ExitCode,
        DiffusionArgumentException => ExitCodes.Usage,
        DiffusionException or IOException or UnauthorizedAccessException or InvalidDataException => ExitCodes.Failure,
        OperationCanceledException => ExitCodes.Cancelled,
        _ => ExitCodes.InternalError,
    };

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}

/// <summary>
/// The command failed and the failure was reported elsewhere (by another process of the same run): end with
/// <see cref="ExitCode"/> and say nothing more.
/// </summary>
public sealed class FailedElsewhere(int exitCode) : Exception($"failed elsewhere (exit code {exitCode})")
{
    /// <summary>The exit code of the failure as it was reported.</summary>
    public int ExitCode { get; } = exitCode;
}

/// <summary>The CLI's exit codes: scripts can tell a usage error from a failure from a bug.</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;
    /// <summary>A handled failure: a file, model, image or I/O problem, explained on stderr.</summary>
    public const int Failure = 1;
    /// <summary>A usage error: an unknown option or command, or an argument out of range.</summary>
    public const int Usage = 2;
    /// <summary>An unexpected exception: a bug (EX_SOFTWARE).</summary>
    public const int InternalError = 70;
    /// <summary>Cancelled with Ctrl-C (128 + SIGINT).</summary>
    public const int Cancelled = 130;
}

/// <summary>Tables of plain text (no Spectre markup is interpreted in cells).</summary>
public static class PlainTable
{
    /// <summary>Adds a row whose cells are taken literally.</summary>
    public static Table AddPlainRow(this Table table, params string[] cells) =>
        table.AddRow(cells.Select(c => new Text(c)).ToArray());
}
