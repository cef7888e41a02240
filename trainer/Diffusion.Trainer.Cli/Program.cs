using System.CommandLine;
using Diffusion.Runtime;
using Diffusion.Trainer.Commands;

namespace Diffusion.Trainer;

/// <summary>Entry point of the trainer: ./diffusion train | export | bench-train.</summary>
public static class Program
{
    /// <summary>Runs the trainer CLI.</summary>
    public static Task<int> Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the trainer CLI with the given writers (tests use this).</summary>
    public static Task<int> Run(string[] args, TextWriter output, TextWriter error, CancellationToken cancellation = default)
    {
        var root = new RootCommand("Diffusion for .NET trainer — train a UNet on TorchSharp and export it to ONNX.")
        {
            TrainCommand.Create(output, error),
            ExportCommand.Create(output, error),
            BenchTrainCommand.Create(output, error),
            TrainClassifierCommand.Create(output, error),
        };
        var parsed = root.Parse(args);
        if (Diffusion.Cli.UsageErrors.Report(parsed, root, error)) return Task.FromResult(2);
        return parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false }, cancellation);
    }

    /// <summary>
    /// Runs a command body. Handled errors become one line on stderr: exit code 2 for invalid arguments, 1 for files,
    /// data and I/O, 130 for Ctrl-C; anything else is a bug and says so (exit code 70), as in the runtime's CLI.
    /// </summary>
    internal static async Task<int> Guard(TextWriter error, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (e is ArgumentException or DiffusionArgumentException)
        {
            await error.WriteLineAsync($"error: {OneLine(e.Message)}");
            return 2;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or DiffusionException or InvalidOperationException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"error: {OneLine(e.Message)}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            await error.WriteLineAsync("cancelled.");
            return 130;
        }
        catch (Exception e)
        {
            await error.WriteLineAsync($"internal error (a bug in Diffusion for .NET; please report it with this output): {e}");
            return 70;
        }
    }

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
