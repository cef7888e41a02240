using System.CommandLine;
using Diffusion.ReferenceModels;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>gaussian-model --out F.onnx</c>: writes the closed-form reference model (for testing samplers).
/// </summary>
public static class GaussianModelCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var output = new Option<string>("--out", "-o")
        {
            Description = "Where to write the .onnx file.", Required = true,
        };
        var bundled = new Option<bool>("--bundled") { Description = "Write the bundled 32×32 RGB colour-class model." };
        var textToImage = new Option<bool>("--text-to-image")
        {
            Description = "Write a Stable Diffusion-layout folder at --out whose every component is closed-form " +
                "(tokenizer, text encoder, UNet, VAE): the prompt's embedding sets the latents' mean.",
        };
        var float16 = new Option<bool>("--float16") { Description = "With --text-to-image: a float16 export." };
        var mean = new Option<float>("--mean")
        {
            Description = "Data mean μ (single channel).", DefaultValueFactory = _ => 0.5f,
        };
        var std = new Option<float>("--std")
        {
            Description = "Data standard deviation s.", DefaultValueFactory = _ => 0.3f,
        };
        var size = new Option<int>("--size") { Description = "Image height and width.", DefaultValueFactory = _ => 8 };
        var prediction = new Option<string>("--prediction")
        {
            Description = "epsilon, v_prediction or sample.", DefaultValueFactory = _ => "epsilon",
        };
        var schedule = new Option<string>("--schedule")
        {
            Description = "Beta schedule.", DefaultValueFactory = _ => "linear",
        };
        var command = new Command("gaussian-model",
            "Write the closed-form denoiser of N(μ, s²) data as an ONNX model: every correct " +
                "sampler reproduces μ and s.")
        {
            output, bundled, textToImage, float16, mean, std, size, prediction, schedule,
        };
        command.SetAction((p, _) => console.Guard(() =>
        {
            if (p.GetValue(textToImage))
            {
                var folder = p.GetValue(output)!;
                if (File.Exists(folder) || (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any()))
                    throw new DiffusionArgumentException("--out", $"'{folder}' exists; give a new folder.");
                int side = p.GetResult(size) is { Implicit: false } ? p.GetValue(size) : 64;
                if (side is <= 0 or > 512 || side % 8 != 0)
                    throw new DiffusionArgumentException("--size", $"the image side in pixels, a multiple of 8 up to " +
                        $"512, got {side}.");
                var staging = folder.TrimEnd('/') + ".partial";
                if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
                LatentGaussianFolder.Write(staging, new LatentGaussianSpec
                {
                    SampleSize = side / 8, Std = p.GetValue(std), Float16 = p.GetValue(float16),
                });
                if (Directory.Exists(folder)) Directory.Delete(folder);
                Directory.Move(staging, folder); // nothing half-written under the name asked for
                console.Out.WriteLine($"wrote {folder} (a closed-form text-to-image folder, " +
                    $"{side}×{side})");
                return Task.FromResult(0);
            }
            if (!(p.GetValue(std) > 0) || !float.IsFinite(p.GetValue(std)))
                throw new DiffusionArgumentException("--std", $"must be a positive number, got {p.GetValue(std)}.");
            if (!float.IsFinite(p.GetValue(mean)))
                throw new DiffusionArgumentException("--mean", $"must be a finite number, got {p.GetValue(mean)}.");
            if (p.GetValue(size) is <= 0 or > 4096)
                throw new DiffusionArgumentException("--size", $"must lie in 1…4096, got {p.GetValue(size)}.");
            var spec = p.GetValue(bundled) ? GaussianModel.Bundled : new GaussianModelSpec
            {
                Height = p.GetValue(size),
                Width = p.GetValue(size),
                Mean = [p.GetValue(mean)],
                Std = [p.GetValue(std)],
                Config = new DiffusionConfig
                {
                    PredictionType = p.GetValue(prediction)!, BetaSchedule = p.GetValue(schedule)!,
                },
            };
            var bytes = GaussianModel.Build(spec);
            var path = p.GetValue(output)!;
            AtomicFile.Write(path, s => s.Write(bytes));
            console.Out.WriteLine($"wrote {path} ({bytes.Length} bytes)");
            return Task.FromResult(0);
        }));
        return command;
    }
}
