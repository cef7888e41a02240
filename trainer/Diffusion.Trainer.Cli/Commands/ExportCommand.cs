using System.CommandLine;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;
using Diffusion.Trainer.Data;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Commands;

/// <summary>
/// <c>export --checkpoint FILE | --onnx FILE --out FILE.onnx [--ema] [--use-karras-sigmas] [--timestep-spacing S]
/// [--precision fp32|int8 [--calibration-data D] [--calibration-images N] [--calibration-ranges mse|minmax]]</c>.
/// </summary>
public static class ExportCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(TextWriter output, TextWriter error)
    {
        var checkpoint = new Option<string?>("--checkpoint") { Description = "checkpoint.pt of a training run." };
        var onnx = new Option<string?>("--onnx")
        {
            Description = "Instead of a checkpoint, a float32 .onnx this trainer exported (e.g. the shipped model), " +
                "to write again in this exporter's graph form (checked to compute the same outputs), at --precision.",
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
        var precision = new Option<string>("--precision")
        {
            Description = "fp32, or int8: convolutions in ONNX's QDQ form (per-channel 7-bit weights, uint8 " +
                "activations calibrated on noised training images across the timesteps), which ONNX Runtime runs on " +
                "its integer kernels.",
            DefaultValueFactory = _ => "fp32",
        };
        var calibrationData = new Option<string>("--calibration-data")
        {
            Description = "int8: the images to calibrate on (as train's --data).",
            DefaultValueFactory = _ => "fashion-mnist",
        };
        var calibrationImages = new Option<int>("--calibration-images")
        {
            Description = "int8: images calibrated on, each noised at 20 timesteps over [0, T − 1].",
            DefaultValueFactory = _ => new CalibrationOptions().Images,
        };
        var calibrationRanges = new Option<string>("--calibration-ranges")
        {
            Description = "int8: each activation's uint8 range — mse (least expected squared error over the " +
                "calibration values' histogram) or minmax.",
            DefaultValueFactory = _ => "mse",
        };
        var command = new Command("export", "Export a checkpoint's UNet to ONNX (the runtime's model contract).")
        {
            checkpoint, onnx, outFile, ema, karras, spacing, precision, calibrationData, calibrationImages,
            calibrationRanges,
        };
        command.SetAction((p, _) => Program.Guard(error, async () =>
        {
            if (p.GetValue(spacing) is string s && s.ToLowerInvariant() is not ("trailing" or "leading" or "linspace"))
                throw new DiffusionArgumentException("--timestep-spacing",
                    $"'{s}': expected trailing, leading or linspace.");
            var mode = p.GetValue(precision)!.ToLowerInvariant();
            if (mode is not ("fp32" or "int8"))
                throw new DiffusionArgumentException("--precision", $"'{mode}': expected fp32 or int8.");
            var ranges = p.GetValue(calibrationRanges)!.ToLowerInvariant() switch
            {
                "mse" => RangeMethod.LeastSquares,
                "minmax" => RangeMethod.MinMax,
                var other => throw new DiffusionArgumentException("--calibration-ranges",
                    $"'{other}': expected mse or minmax."),
            };
            var (from, source) = (p.GetValue(checkpoint), p.GetValue(onnx));
            if ((from is null) == (source is null))
                throw new DiffusionArgumentException("--checkpoint", "give a checkpoint or an --onnx file (one).");
            if (source is not null && (p.GetValue(ema) || p.GetValue(karras) || p.GetValue(spacing) is not null))
                throw new DiffusionArgumentException("--onnx", "an ONNX source keeps its weights and config: --ema, " +
                    "--use-karras-sigmas and --timestep-spacing need the checkpoint.");
            if (source is not null && !File.Exists(source))
                throw new DiffusionArgumentException("--onnx", $"'{source}' does not exist.");
            var path = p.GetValue(outFile)!;
            byte[] bytes;
            if (source is not null)
            {
                (bytes, double difference) = UNetImporter.Reexport(await File.ReadAllBytesAsync(source), source);
                await error.WriteLineAsync($"export: {source} written again by this exporter; its output is within " +
                    $"{difference:0.0e+0} of the file's");
            }
            else bytes = FromCheckpoint(p.GetValue(ema), from!, p.GetValue(karras), p.GetValue(spacing));
            if (mode == "int8")
            {
                var data = Datasets.Open(p.GetValue(calibrationData)!);
                bytes = Int8Quantizer.Quantize(bytes, source ?? from!, data,
                    new CalibrationOptions { Images = p.GetValue(calibrationImages), Ranges = ranges },
                    line => error.WriteLine($"export: {line}")).Model;
            }
            AtomicFile.Write(path, st => st.Write(bytes));
            await output.WriteLineAsync($"wrote {path} ({new FileInfo(path).Length / 1024.0 / 1024.0:0.00} MB, " +
                $"{(source is not null ? "from " + source : p.GetValue(ema) ? "EMA weights" : "raw weights")}, {mode})");
            return 0;
        }));
        return command;
    }

    private static byte[] FromCheckpoint(bool ema, string path, bool karras, string? spacing)
    {
        var (net, config) = TrainingRun.LoadNetwork(path, ema);
        using (net)
            return UNetExporter.ToOnnx(net, config with
            {
                UseKarrasSigmas = karras, TimestepSpacing = spacing?.ToLowerInvariant() ?? config.TimestepSpacing,
            });
    }
}
