using System.CommandLine;
using Diffusion.Cli.Commands;

namespace Diffusion.Cli;

/// <summary>Entry point of <c>./diffusion</c>.</summary>
public static class Program
{
    /// <summary>Runs the CLI.</summary>
    public static Task<int> Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the CLI with the given output writers (tests use this).</summary>
    public static Task<int> Run(string[] args, TextWriter output, TextWriter error,
        CancellationToken cancellation = default)
    {
        var console = new CliConsole(output, error, Flags.ByParameter);
        var root = new RootCommand("Diffusion for .NET — sample images from diffusion models exported to ONNX, and " +
            "train them (train, export).")
        {
            SampleCommand.Create(console),
            SampleCommand.Create(console, SampleCommand.Mode.Img2Img),
            SampleCommand.Create(console, SampleCommand.Mode.Inpaint),
            InterpolateCommand.Create(console),
            InputsCommand.Noise(console),
            InputsCommand.Mask(console),
            InfoCommand.Create(console),
            DevicesCommand.Create(console),
            TokenizeCommand.Create(console),
            SamplersCommand.Create(console),
            BenchRuntimeCommand.Create(console),
            GaussianModelCommand.Create(console),
            EvalCommand.Create(console),
            NllCommand.Create(console),
            SchedulesCommand.Create(console),
            BenchCommand.Create(console),
        };
        // The trainer's commands run in their own app (it loads TorchSharp; this one never does). ./diffusion starts
        // the right one; they are listed here so that one --help shows every command.
        foreach (var (name, description) in new[]
        {
            ("train",
                "Train a diffusion UNet (TorchSharp); checkpoints, loss log, sample grids. See " +
                    "./diffusion train --help."),
            ("export",
                "Export a training checkpoint's UNet to ONNX (the model contract). See ./diffusion export --help."),
            ("bench-train",
                "Training throughput of the reference UNet, optionally beside the PyTorch twin. See ./diffusion " +
                    "bench-train --help."),
            ("train-classifier",
                "Train the feature classifier of the quality metric. See ./diffusion train-classifier --help."),
        })
        {
            var trainer = new Command(name, description) { TreatUnmatchedTokensAsErrors = false };
            trainer.SetAction(_ =>
            {
                error.WriteLine($"error: '{name}' runs in the trainer: use ./diffusion {name} … (the script starts " +
                    $"it), or dotnet trainer/Diffusion.Trainer.Cli/bin/Release/net10.0/diffusion.dll {name} ….");
                return ExitCodes.Usage;
            });
            root.Subcommands.Add(trainer);
        }
        var parsed = root.Parse(args);
        if (UsageErrors.Report(parsed, root, error)) return Task.FromResult(ExitCodes.Usage);
        var config = new InvocationConfiguration
        {
            Output = output, Error = error, EnableDefaultExceptionHandler = false,
        };
        return parsed.InvokeAsync(config, cancellation);
    }
}
