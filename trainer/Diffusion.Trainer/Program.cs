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
        return root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellation);
    }

    /// <summary>Runs a command body; user errors become one line on stderr and exit code 1.</summary>
    internal static async Task<int> Guard(TextWriter error, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or DiffusionException or InvalidOperationException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"error: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            await error.WriteLineAsync("cancelled; the last checkpoint is intact.");
            return 130;
        }
    }
}
