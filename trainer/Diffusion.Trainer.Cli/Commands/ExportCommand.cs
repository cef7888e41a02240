using System.CommandLine;
using Diffusion.Runtime;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Commands;

/// <summary>
/// <c>export --checkpoint FILE --out FILE.onnx [--ema] [--use-karras-sigmas] [--timestep-spacing S]</c>.
/// </summary>
public static class ExportCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(TextWriter output, TextWriter error)
    {
        var checkpoint = new Option<string>("--checkpoint")
        {
            Required = true, Description = "checkpoint.pt of a training run.",
        };
        var outFile = new Option<string>("--out") { Required = true, Description = "The .onnx file to write." };
        var ema = new Option<bool>("--ema")
        {
            Description = "Export the EMA weights (recommended) instead of the raw ones.",
        };
        var karras = new Option<bool>("--use-karras-sigmas")
        {
            Description = "Write use_karras_sigmas: samplers then default to Karras' σ grid.",
        };
        var spacing = new Option<string?>("--timestep-spacing")
        {
            Description = "The timestep_spacing samplers default to: trailing, leading or " +
                "linspace (default: the run's).",
        };
        var command = new Command("export", "Export a checkpoint's UNet to ONNX (the runtime's model contract).")
        {
            checkpoint, outFile, ema, karras, spacing,
        };
        command.SetAction((p, _) => Program.Guard(error, async () =>
        {
            if (p.GetValue(spacing) is string s && s.ToLowerInvariant() is not ("trailing" or "leading" or "linspace"))
                throw new DiffusionArgumentException("--timestep-spacing",
                    $"'{s}': expected trailing, leading or linspace.");
            var (net, config) = TrainingRun.LoadNetwork(p.GetValue(checkpoint)!, p.GetValue(ema));
            config = config with
            {
                UseKarrasSigmas = p.GetValue(karras), TimestepSpacing = p.GetValue(spacing)?.ToLowerInvariant()
                    ?? config.TimestepSpacing,
            };
            using (net)
            {
                var path = p.GetValue(outFile)!;
                UNetExporter.Save(net, config, path);
                await output.WriteLineAsync($"wrote {path} ({new FileInfo(path).Length / 1024.0 / 1024.0:0.00} " +
                    $"MB, {(p.GetValue(ema) ? "EMA" : "raw")} weights)");
            }
            return 0;
        }));
        return command;
    }
}
