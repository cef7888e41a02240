using System.CommandLine;
using Diffusion.Cli.Commands;

namespace Diffusion.Cli;

/// <summary>Entry point of <c>./diffusion</c>.</summary>
public static class Program
{
    /// <summary>Runs the CLI.</summary>
    public static Task<int> Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the CLI with the given output writers (tests use this).</summary>
    public static Task<int> Run(string[] args, TextWriter output, TextWriter error, CancellationToken cancellation = default)
    {
        var console = new CliConsole(output, error);
        var root = new RootCommand("Diffusion for .NET — sample images from diffusion models exported to ONNX.")
        {
            SampleCommand.Create(console),
            SampleCommand.Create(console, SampleCommand.Mode.Img2Img),
            SampleCommand.Create(console, SampleCommand.Mode.Inpaint),
            InterpolateCommand.Create(console),
            InfoCommand.Create(console),
            SamplersCommand.Create(console),
            BenchRuntimeCommand.Create(console),
            GaussianModelCommand.Create(console),
            EvalCommand.Create(console),
            SchedulesCommand.Create(console),
            BenchCommand.Create(console),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // One line per problem and a pointer to the help, not the whole help text; exit code 2 (usage).
            foreach (var e in parsed.Errors) error.WriteLine($"error: {e.Message}");
            var command = parsed.CommandResult.Command;
            error.WriteLine($"see: diffusion {(command == root ? "" : command.Name + " ")}--help");
            return Task.FromResult(ExitCodes.Usage);
        }
        var config = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        return parsed.InvokeAsync(config, cancellation);
    }
}
