using System.CommandLine;
using Diffusion.Cli.Output;
using Diffusion.Runtime;
using Diffusion.Runtime.Editing;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>interpolate --from F|seed --to F|seed --frames N</c>: DDIM-invert two images (or take two seeds' x_T), slerp the
/// latents, and decode every frame deterministically with DDIM (η = 0) on the same grid.
/// </summary>
public static class InterpolateCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new ModelArguments();
        var images = new ImageArguments();
        var from = new Option<string>("--from")
        {
            Required = true,
            Description = "Start: an image (any format read; fitted as --resize says), a .npy or a seed.",
        };
        var to = new Option<string>("--to") { Required = true, Description = "End: an image, a .npy or a seed." };
        var frames = new Option<int>("--frames")
        {
            DefaultValueFactory = _ => 8, Description = "Frames, both ends included.",
        };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 50 };
        var label = new Option<string?>("--class", "-c")
        {
            Description = "Class for class-conditional models (default: unconditional).",
        };
        var guidance = new Option<float>("--guidance", "-g") { DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out", "-o")
        {
            DefaultValueFactory = _ => "out/interpolation.png",
            Description = "FILE.png, .jpg or .webp (a strip), FILE.npy or DIR/.",
        };
        var command = new Command("interpolate",
            "Morph between two images or seeds: DDIM inversion, spherical interpolation, deterministic decoding.")
        {
            from, to, frames, steps, label, guidance, output,
        };
        images.AddInputsTo(command);
        images.AddOutputsTo(command);
        model.AddTo(command);
        command.SetAction((p, cancellation) => console.Guard(async () =>
        {
            int n = p.GetValue(frames);
            if (n is < 2 or > 10_000)
                throw new DiffusionArgumentException("--frames", $"must lie in 2…10000, got {n}.");
            using var m = model.Load(p);
            if ((long)n * m.ImageSize > Array.MaxLength)
                throw new DiffusionArgumentException("--frames",
                    $"{n}: {n} frames of {m.ImageSize:N0} values are more than one run holds (2³¹ values).");
            var writer = new SampleWriter(p.GetValue(output)!, m.Channels,
                SampleWriter.DefaultScale(m.Height, m.Width))
            {
                ScaleFilter = images.ScaleFilter.Value(p), Quality = images.QualityOf(p),
            };
            writer.Check(n, m.Channels, m.Height, m.Width, columns: n);
            int[] labels = p.GetValue(label) is { } l && l != "none" ? [m.ResolveClass(l)] : [];
            var generator = new ImageGenerator(m);
            var request = new GenerationRequest
            {
                Sampler = "ddim", Steps = p.GetValue(steps), Count = n, BatchSize = Math.Min(n, 16),
                ClassLabels = labels,
                Guidance = p.GetValue(guidance), KarrasSigmas = true,
            };
            var grid = generator.Grid(request);
            float[] Latent(string spec) => ulong.TryParse(spec, out var seed) ? Noise(seed, m.ImageSize)
                : DdimInversion.Invert(m, SampleCommand.LoadImages(spec, m.Shape, images.Input(p, m)).Images[..m.ImageSize],
                    1, grid, 1, labels, p.GetValue(guidance), cancellation);
            var z0 = Latent(p.GetValue(from)!);
            var z1 = Latent(p.GetValue(to)!);
            var latents = new float[n * m.ImageSize];
            for (int i = 0; i < n; i++)
                DdimInversion.Slerp(z0, z1, i / (double)(n - 1)).CopyTo(latents.AsSpan(i * m.ImageSize));
            var result = await generator.GenerateAsync(request with { InitialNoise = latents },
                new ProgressLines(console.Error, "decoding"), cancellation);
            var written = writer.Write(result, columns: n);
            console.Out.WriteLine($"wrote {written}: {n} frames, DDIM {request.Steps} steps (Karras σ)");
            return 0;
        }));
        return command;
    }

    private static float[] Noise(ulong seed, int size)
    {
        var z = new float[size];
        new NoiseGenerator(seed).Fill(z, 0, 0);
        return z;
    }
}
