using System.CommandLine;
using Diffusion.Cli.Output;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;
using Spectre.Console;

namespace Diffusion.Cli.Commands;

/// <summary><c>sample</c>: generate images and write them as a PNG grid, .npy, or a folder of PNGs.</summary>
public static class SampleCommand
{
    /// <summary>Which command this is: plain generation or one of the edits.</summary>
    public enum Mode
    {
        /// <summary><c>sample</c>.</summary>
        Sample,
        /// <summary><c>img2img</c>: SDEdit from --image at --strength.</summary>
        Img2Img,
        /// <summary><c>inpaint</c>: keep --image where --mask is 1, generate the rest.</summary>
        Inpaint,
    }

    /// <summary>
    /// Builds <c>sample</c>, <c>img2img</c> or <c>inpaint</c>: the same options, plus the edit's inputs.
    /// </summary>
    public static Command Create(CliConsole console, Mode mode = Mode.Sample)
    {
        bool editing = mode == Mode.Img2Img;
        var model = new ModelArguments();
        var sampler = new Option<string?>("--sampler", "-s")
        {
            Description = $"Sampler (see `samplers`); `{SamplerRegistry.DiffusersName}`: the scheduler a diffusers "
                + "config names, walked as diffusers walks it. Default: that scheduler when the model's config names "
                + $"one, else {SamplerRegistry.DefaultName}.",
        };
        var steps = new Option<int>("--steps")
        {
            Description = "Sampling steps.", DefaultValueFactory = _ => Defaults.Steps,
        };
        var count = new Option<int?>("--count", "-n")
        {
            Description = $"Number of images (default {Defaults.Count}, or as many as --init-noise holds).",
        };
        var seed = new Option<ulong>("--seed")
        {
            Description = "Noise seed; image i of a seed is the same at any --batch.", DefaultValueFactory = _ =>
                Defaults.Seed,
        };
        var batch = new Option<int>("--batch")
        {
            Description = "Images per network call at most (guidance doubles the network batch).",
            DefaultValueFactory = _ => Defaults.BatchSize,
        };
        var eta = new Option<double?>("--eta")
        {
            Description = $"Stochasticity η (0 = the ODE): {KnobDefaults(SamplerKnobs.Eta, o => o.Eta)}.",
        };
        var guidance = new Option<float>("--guidance", "-g")
        {
            Description = "Classifier-free guidance weight (1 = none).", DefaultValueFactory = _ => Defaults.Guidance,
        };
        var label = new Option<string?>("--class", "-c")
        {
            Description = "Class name or id for every image; 'all' cycles through the classes (the default for " +
                "class-conditional models); 'none' samples unconditionally.",
        };
        var initNoise = new Option<string?>("--init-noise")
        {
            Description = "x_T from a float32 .npy of shape [N,C,H,W].",
        };
        var output = new Option<string>("--out", "-o")
        {
            Description = "FILE.png (grid), FILE.npy (float32 [N,C,H,W], data range) or DIR/ (one PNG each).",
            DefaultValueFactory = _ =>
                    $"out/{(mode == Mode.Sample ? "samples" : mode.ToString().ToLowerInvariant())}.png",
        };
        var spacing = new Option<string?>("--spacing")
        {
            Description = "Timestep spacing: trailing, leading or linspace (default: the model config's).",
        };
        var karras = new Option<bool?>("--karras")
        {
            Description = "Karras et al.'s σ grid (ρ = 7); --karras false forces timesteps. Default: the model's " +
                "use_karras_sigmas.",
        };
        var rtol = new Option<double?>("--rtol")
        {
            Description = $"Relative tolerance of {KnobDefaults(SamplerKnobs.Tolerances, o => o.RelativeTolerance)}.",
        };
        var atol = new Option<double?>("--atol")
        {
            Description = $"Absolute tolerance of {KnobDefaults(SamplerKnobs.Tolerances, o => o.AbsoluteTolerance)}.",
        };
        var snr = new Option<double?>("--snr")
        {
            Description = $"Langevin signal-to-noise ratio of {KnobDefaults(SamplerKnobs.Snr, o => o.Snr)}.",
        };
        var columns = new Option<int>("--columns")
        {
            Description = "Columns of the PNG grid (0 = square).", DefaultValueFactory = _ => 0,
        };
        var image = new Option<string>("--image")
        {
            Required = true, Description = "Input: a PNG, or a float32 .npy [N,C,H,W] in [−1, 1].",
        };
        var strength = new Option<double>("--strength")
        {
            DefaultValueFactory = _ => DefaultStrength,
            Description = "Noise level to start from, in (0, 1]: 1 = plain generation, → 0 = the input.",
        };
        var jumps = new Option<int>("--jumps")
        {
            DefaultValueFactory = _ => new SamplerOptions().Resampling,
            Description = "RePaint resampling: do each ddpm/ddim step this many times, re-noising in between " +
                    "(harmonises the filled region).",
        };
        var maskOption = new Option<string>("--mask")
        {
            Required = true,
            Description = "Mask PNG as in diffusers: white = repaint, black = keep (see --mask-keeps; a gray PNG " +
                    "applies to every channel), or a .npy of 1 = keep, 0 = repaint [N,C,H,W].",
        };
        var maskKeeps = new Option<string>("--mask-keeps")
        {
            DefaultValueFactory = _ => "black",
            Description = "Which PNG mask colour marks pixels to keep: black (diffusers' convention, default) or " +
                    "white.",
        };
        var scale = new Option<int?>("--scale")
        {
            Description = "Enlarge PNG outputs N× (nearest neighbour); default: enough for 128 pixels a side (5× for " +
                "28×28).",
        };
        var command = new Command(mode.ToString().ToLowerInvariant(), mode switch
        {
            Mode.Img2Img => "Vary images (SDEdit): noise them to --strength and denoise with any sampler.",
            Mode.Inpaint =>
                "Repaint the white region of --mask (diffusers' convention; --mask-keeps white for the reverse), " +
                    "keeping the other --image pixels exactly.",
            _ => "Generate images.",
        })
        {
            sampler, steps, count, seed, batch, eta, guidance, label, initNoise, output, spacing, karras, rtol, atol,
                snr, columns, scale,
        };
        if (mode != Mode.Sample) command.Options.Add(image);
        if (mode == Mode.Img2Img) command.Options.Add(strength);
        if (mode == Mode.Inpaint)
        {
            command.Options.Add(maskOption);
            command.Options.Add(maskKeeps);
            command.Options.Add(jumps);
        }
        model.AddTo(command);

        command.SetAction((p, cancellation) => console.Guard(async () =>
        {
            if (p.GetValue(count) is <= 0)
                throw new DiffusionArgumentException("--count",
                    $"must be a positive number of images, got {p.GetValue(count)}.");
            if (p.GetValue(columns) < 0)
                throw new DiffusionArgumentException("--columns",
                    $"must be ≥ 0 (0 = square), got {p.GetValue(columns)}.");
            using var m = model.Load(p);
            var writer = new SampleWriter(p.GetValue(output)!, m.Channels, p.GetValue(scale)
                ?? SampleWriter.DefaultScale(m.Height, m.Width));
            bool replacing = writer.Replaces;
            float[]? init = null;
            int n = p.GetValue(count) ?? Defaults.Count;
            if (p.GetValue(initNoise) is { } noisePath)
            {
                var array = Npy.Load(noisePath, m.Channels, m.Height, m.Width);
                var s = array.Shape;
                if (p.GetValue(count) is int c && c != s[0])
                    throw new DiffusionException($"--init-noise '{noisePath}' holds {s[0]} images but --count is {c}.");
                n = s[0];
                init = array.Data;
            }
            float[]? inputs = null, mask = null;
            if (mode != Mode.Sample)
            {
                var loaded = LoadImages(p.GetValue(image)!, m);
                n = p.GetValue(count) ?? loaded.Count;
                if ((long)n * m.ImageSize > Array.MaxLength)
                    throw new DiffusionArgumentException("--count",
                        $"{n}: {n} images of {m.ImageSize:N0} values are more than one run holds (2³¹ values).");
                inputs = Repeat(loaded.Images, loaded.Count, n, m.ImageSize);
                if (mode == Mode.Inpaint)
                {
                    var keepWhite = p.GetValue(maskKeeps)!.ToLowerInvariant() switch
                    {
                        "white" => true,
                        "black" => false,
                        var other =>
                            throw new DiffusionArgumentException("--mask-keeps",
                                $"'{other}': expected black (diffusers' convention) or white."),
                    };
                    var loadedMask = LoadMask(p.GetValue(maskOption)!, m, keepWhite);
                    mask = Repeat(loadedMask.Images, loadedMask.Count, n, m.ImageSize);
                }
            }
            writer.Check(n, m.Channels, m.Height, m.Width, p.GetValue(columns));
            var request = new GenerationRequest
            {
                InitialImages = editing ? inputs : null,
                KnownImages = mode == Mode.Inpaint ? inputs : null,
                Mask = mask,
                Strength = editing ? p.GetValue(strength) : 1,
                Sampler = p.GetValue(sampler),
                Steps = p.GetValue(steps),
                Count = n,
                Seed = p.GetValue(seed),
                BatchSize = p.GetValue(batch),
                Guidance = p.GetValue(guidance),
                ClassLabels = Labels(m, p.GetValue(label), n),
                InitialNoise = init,
                Spacing = p.GetValue(spacing) is { } sp ? Parse(() => TimestepSpacings.Parse(sp), "--spacing") : null,
                KarrasSigmas = p.GetValue(karras),
                Options = new SamplerOptions
                {
                    Resampling = mode == Mode.Inpaint ? p.GetValue(jumps) : 1, Eta = p.GetValue(eta),
                    RelativeTolerance = p.GetValue(rtol), AbsoluteTolerance = p.GetValue(atol), Snr = p.GetValue(snr),
                },
            };
            var generator = new ImageGenerator(m);
            var result = await Generate(console, generator, request, cancellation);
            writer.Parameters = new Dictionary<string, string>
            {
                ["parameters"] = string.Join(", ", new[]
                {
                    $"model: {Path.GetFileName(m.Source)}", $"sampler: {result.Sampler}", $"steps: {request.Steps}",
                    $"seed: {request.Seed}", $"guidance: {request.Guidance}",
                    $"class: {p.GetValue(label) ?? (m.NumClasses > 0 ? "all" : "none")}",
                }.Concat(p.GetValue(eta) is double e ? [$"eta: {e}"] : [])),
                ["Software"] = "Diffusion for .NET",
            };
            var written = writer.Write(result, p.GetValue(columns));
            console.Out.WriteLine(
                $"wrote {written}{(replacing ? " (replacing the earlier output)" : "")}: {result.Count} " +
                    $"images {m.Channels}×{m.Height}×{m.Width}{(writer.Scale > 1 ? $" shown {writer.Scale}×" : "")}, {result.Sampler}, " +
                $"{result.EvaluationsPerImage:0.#} network evaluations per " +
                $"image, {result.TotalTime.TotalSeconds:0.00} s ({result.ModelTime.TotalSeconds:0.00} s in the " +
                    $"model, {m.Settings.Device})");
            return 0;
        }));
        return command;
    }

    private static async Task<GenerationResult> Generate(CliConsole console, ImageGenerator generator,
        GenerationRequest request, CancellationToken cancellation)
    {
        if (!console.Interactive)
            return await generator.GenerateAsync(request, new ProgressLines(console.Error, "sampling"), cancellation);
        GenerationResult? result = null;
        await console.Ansi.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask($"{request.Sampler ?? "sampling"}, {request.Count} images",
                    maxValue: request.Count);
                var progress = new Progress<GenerationProgress>(g => task.Value = g.Fraction * request.Count);
                result = await Task.Run(() => generator.Generate(request, progress, cancellation), cancellation);
                task.Value = request.Count;
            });
        return result!;
    }

    private static float[] Repeat(float[] images, int count, int n, int size)
    {
        var result = new float[n * size];
        for (int i = 0; i < n; i++) images.AsSpan(i % count * size, size).CopyTo(result.AsSpan(i * size));
        return result;
    }

    /// <summary>
    /// A mask: PNG (black = keep, white = repaint, as diffusers; or the reverse with <paramref name="keepWhite"/>; one
    /// gray channel applies to all) or .npy of 1 = keep, 0 = repaint [N,C,H,W].
    /// </summary>
    private static (float[] Images, int Count) LoadMask(string path, DiffusionModel m, bool keepWhite)
    {
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return LoadImages(path, m);
        if (!File.Exists(path)) throw new DiffusionException($"--mask '{path}' does not exist.");
        var picture = Png.Read(path, PngLimits.SizeOrMultiple(m.Width, m.Height, $"model '{m.Source}'"));
        // an image written with --scale k is read back at the model's size
        picture = ImageGrid.Shrink(picture, picture.Width / m.Width);
        if (picture.Channels != 1 && picture.Channels != m.Channels)
            throw new DiffusionException($"--mask '{path}' is {picture.Width}×{picture.Height} " +
                $"with {picture.Channels} channel(s); the image is {m.Width}×{m.Height} with {m.Channels} (a gray " +
                    $"mask applies to every channel).");
        int plane = m.Width * m.Height;
        var mask = new float[m.ImageSize];
        for (int c = 0; c < m.Channels; c++)
            for (int i = 0; i < plane; i++)
            {
                byte v = picture.Pixels[i * picture.Channels + (picture.Channels == 1 ? 0 : c)];
                mask[c * plane + i] = v switch
                {
                    0 => keepWhite ? 0 : 1,
                    255 => keepWhite ? 1 : 0,
                    _ => throw new DiffusionException($"--mask '{path}' is not binary: pixel " +
                        $"({i % m.Width}, {i / m.Width}) is {v}; use 0 (black: {(keepWhite ? "repaint" : "keep")}) " +
                            $"or 255 (white: {(keepWhite ? "keep" : "repaint")})."),
                };
            }
        return (mask, 1);
    }

    /// <summary>A PNG (one image) or a .npy [N,C,H,W] in [−1, 1], checked against the model's image shape.</summary>
    internal static (float[] Images, int Count) LoadImages(string path, DiffusionModel m)
    {
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            var array = Npy.Load(path, m.Channels, m.Height, m.Width);
            if (array.Shape[0] == 0) throw new DiffusionException($"'{path}' holds no images.");
            return (array.Data, array.Shape[0]);
        }
        if (!File.Exists(path)) throw new DiffusionException($"--image '{path}' does not exist.");
        var picture = Png.Read(path, PngLimits.SizeOrMultiple(m.Width, m.Height, $"model '{m.Source}'"));
        // an image written with --scale k is read back at the model's size
        picture = ImageGrid.Shrink(picture, picture.Width / m.Width);
        if (picture.Channels != m.Channels)
            throw new DiffusionException($"--image '{path}' is {picture.Width}×{picture.Height} " +
                $"with {picture.Channels} channel(s); model '{m.Source}' needs {m.Width}×{m.Height} " +
                    $"with {m.Channels}.");
        return (ImageGrid.FromImage(picture), 1);
    }

    private static int[] Labels(DiffusionModel m, string? text, int count)
    {
        if (text is null) text = m.NumClasses > 0 ? "all" : "none";
        if (string.Equals(text, "none", StringComparison.OrdinalIgnoreCase)) return [];
        if (string.Equals(text, "all", StringComparison.OrdinalIgnoreCase))
        {
            if (m.NumClasses == 0)
                throw new DiffusionException($"--class all: model '{m.Source}' is not class-conditional.");
            return Enumerable.Range(0, count).Select(i => i % m.NumClasses).ToArray();
        }
        return [m.ResolveClass(text)];
    }

    /// <summary>The request defaults the options take: <see cref="GenerationRequest"/>'s own.</summary>
    private static readonly GenerationRequest Defaults = new();

    /// <summary>
    /// img2img's default strength: an edit keeps the input's layout (a request's own default, 1, redraws it).
    /// </summary>
    private const double DefaultStrength = 0.6;

    /// <summary>
    /// "sampler (default) …" for the samplers that read <paramref name="knob"/>, from their own declarations.
    /// </summary>
    private static string KnobDefaults(SamplerKnobs knob, Func<SamplerOptions, double?> value) =>
        string.Join(", ", SamplerRegistry.All.Where(e => e.Knobs.HasFlag(knob))
            .Select(e =>
                $"{e.Name} (default {value(e.Defaults)?.ToString(System.Globalization.CultureInfo.InvariantCulture)})"));

    private static T Parse<T>(Func<T> parse, string option)
    {
        try { return parse(); }
        catch (ArgumentException e) { throw new DiffusionException($"{option}: {e.Message}", e); }
    }
}
