using Diffusion.Runtime;
using Spectre.Console;

namespace Diffusion.Cli;

/// <summary>Where commands write: plain text writers plus a Spectre console for tables and progress bars.</summary>
public sealed class CliConsole(TextWriter output, TextWriter error)
{
    /// <summary>Standard output.</summary>
    public TextWriter Out { get; } = output;
    /// <summary>Standard error.</summary>
    public TextWriter Error { get; } = error;
    /// <summary>A Spectre console over <see cref="Out"/> (colour and live progress only on a real terminal).</summary>
    public IAnsiConsole Ansi { get; } = AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(output),
        Interactive = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected ? InteractionSupport.Yes : InteractionSupport.No,
        Ansi = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
    });

    /// <summary>Whether live progress bars make sense (an interactive terminal).</summary>
    public bool Interactive => Ansi.Profile.Capabilities.Interactive;

    /// <summary>Runs a command body, turning user errors into one clear line on stderr and a non-zero exit code.</summary>
    public async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (DiffusionException e)
        {
            await Error.WriteLineAsync($"error: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            await Error.WriteLineAsync("cancelled; nothing was written.");
            return 130;
        }
    }
}

/// <summary>Tables of plain text (no Spectre markup is interpreted in cells).</summary>
public static class PlainTable
{
    /// <summary>Adds a row whose cells are taken literally.</summary>
    public static Table AddPlainRow(this Table table, params string[] cells) =>
        table.AddRow(cells.Select(c => new Text(c)).ToArray());
}
