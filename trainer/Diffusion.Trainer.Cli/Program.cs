using System.CommandLine;
using Diffusion.CommandLine;
using Diffusion.Trainer.Commands;

namespace Diffusion.Trainer;

/// <summary>Entry point of the trainer: ./diffusion train | export | bench-train.</summary>
public static class Program
{
    /// <summary>Runs the trainer CLI.</summary>
    public static Task<int> Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the trainer CLI with the given writers (tests use this).</summary>
    public static Task<int> Run(string[] args, TextWriter output, TextWriter error,
        CancellationToken cancellation = default)
    {
        var root = new RootCommand("Diffusion for .NET trainer — train a UNet on TorchSharp and export it to ONNX.")
        {
            TrainCommand.Create(output, error),
            ExportCommand.Create(output, error),
            BenchTrainCommand.Create(output, error),
            TrainClassifierCommand.Create(output, error),
        };
        var parsed = root.Parse(args);
        if (UsageErrors.Report(parsed, root, error)) return Task.FromResult(ExitCodes.Usage);
        return parsed.InvokeAsync(new InvocationConfiguration
        {
            Output = output, Error = error, EnableDefaultExceptionHandler = false,
        }, cancellation);
    }

    /// <summary>
    /// Runs a command body as the runtime's CLI does (<see cref="CliConsole.Guard"/>), with the trainer's flags.
    /// </summary>
    internal static Task<int> Guard(TextWriter error, Func<Task<int>> body) =>
        new CliConsole(TextWriter.Null, error, TrainCommand.Flags).Guard(body);
}
