using System.CommandLine;
using Diffusion.Cli.Output;
using Diffusion.Runtime;
using Diffusion.Runtime.Editing;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;
using Spectre.Console;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>sample</c>: generate images and write them as an image grid (PNG, JPEG, WebP), .npy, or a folder of PNGs.
/// </summary>
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
        var o = new SampleOptions(mode);
        var command = new Command(mode.ToString().ToLowerInvariant(), mode switch
        {
            Mode.Img2Img => "Vary images (SDEdit): noise them to --strength and denoise with any sampler.",
            Mode.Inpaint => "Repaint the white region of --mask (diffusers' convention; --mask-keeps white for the "
                + "reverse), keeping the other --image pixels exactly.",
            _ => "Generate images.",
        });
        o.AddTo(command);
        command.SetAction((p, cancellation) => console.Guard(async () =>
            await Ranks.Launch(p, o.Processes, console, cancellation) ?? await Run(console, o, mode, p, cancellation)));
        return command;
    }

    /// <summary>What the images start from: their count, x_T if given, the edit's input images and mask.</summary>
    private sealed record Inputs(int Count, float[]? InitialNoise, float[]? Images, float[]? Mask);

    /// <summary>
    /// What generates: a pixel model's generator, or a text-to-image pipeline; the pixel images' shape; x_T's shape
    /// (latents for a pipeline); where it came from and on which device; what to dispose at the end.
    /// </summary>
    private sealed record Target(IImageGenerator Generator, ImageShape Pixels, ImageShape Noise, string Source,
        string Device, DiffusionModel? PixelModel, IDisposable Owner) : IDisposable
    {
        public void Dispose() => Owner.Dispose();
    }

    /// <summary>
    /// Generates on every rank of the run (one process, or --processes N), each rank its share of the images, and
    /// writes them all from rank 0.
    /// </summary>
    private static async Task<int> Run(CliConsole console, SampleOptions o, Mode mode, ParseResult p,
        CancellationToken cancellation)
    {
        using var ranks = Ranks.Join();
        var local = ranks.IsRoot ? console : new CliConsole(TextWriter.Null, TextWriter.Null, Flags.ByParameter);
        using var t = await ranks.Collectively(() => Task.FromResult(Load(o, p, ranks)));
        var (writer, request, mine) = await ranks.Collectively(() => Generate(local, o, mode, p, t, ranks,
            cancellation));
        var result = ranks.Gather(mine);
        return result is null ? ExitCodes.Ok : Write(console, o, p, t, writer!, request, result);
    }

    /// <summary>The model or text-to-image folder the options name, checked, on this rank's device.</summary>
    private static Target Load(SampleOptions o, ParseResult p, Ranks ranks)
    {
        if (p.GetValue(o.Count) is <= 0)
            throw new DiffusionArgumentException("--count",
                $"must be a positive number of images, got {p.GetValue(o.Count)}.");
        if (p.GetValue(o.Columns) < 0)
            throw new DiffusionArgumentException("--columns",
                $"must be ≥ 0 (0 = square), got {p.GetValue(o.Columns)}.");
        if (ModelArguments.IsTextToImage(o.Model.PathOf(p)))
        {
            var pipeline = o.Model.LoadPipeline(p, ranks);
            try
            {
                var size = new GenerationRequest { Width = p.GetValue(o.Width), Height = p.GetValue(o.Height) };
                var pixels = pipeline.ImageShapeOf(size);
                var latents = new ImageShape(pipeline.Unet.Channels, pixels.Height / pipeline.Factor,
                    pixels.Width / pipeline.Factor);
                return new Target(pipeline, pixels, latents, pipeline.Index.Folder,
                    pipeline.Unet.Settings.Device.ToString(), null, pipeline);
            }
            catch
            {
                pipeline.Dispose(); // a size the folder cannot make
                throw;
            }
        }
        var m = o.Model.Load(p, ranks);
        return new Target(new ImageGenerator(m), m.Shape, m.Shape, m.Source, m.Settings.Device.ToString(), m, m);
    }

    /// <summary>
    /// This rank's share of the request, generated; on rank 0 also the writer, its output location checked first.
    /// </summary>
    private static async Task<(SampleWriter? Writer, GenerationRequest Request, GenerationResult Mine)> Generate(
        CliConsole console, SampleOptions o, Mode mode, ParseResult p, Target t, Ranks ranks,
        CancellationToken cancellation)
    {
        var shape = t.Pixels;
        var writer = ranks.IsRoot ? new SampleWriter(p.GetValue(o.Out)!, shape.Channels,
            p.GetValue(o.Scale) ?? SampleWriter.DefaultScale(shape.Height, shape.Width))
        {
            ScaleFilter = o.Images.ScaleFilter.Value(p), Quality = o.Images.QualityOf(p),
        } : null;
        var inputs = LoadInputs(o, mode, p, t);
        writer?.Check(inputs.Count, shape.Channels, shape.Height, shape.Width, p.GetValue(o.Columns));
        var request = Request(o, mode, p, t.PixelModel, inputs);
        var (first, n) = ranks.Share(request.Count, request.BatchSize);
        var share = Ranks.Slice(request, first, n, shape.Size, t.Noise.Size);
        return (writer, request, await Generate(console, t.Generator, share, cancellation));
    }

    /// <summary>Writes every image (rank 0) and says what was made.</summary>
    private static int Write(CliConsole console, SampleOptions o, ParseResult p, Target t, SampleWriter writer,
        GenerationRequest request, GenerationResult result)
    {
        var shape = t.Pixels;
        bool replacing = writer.Replaces;
        foreach (var warning in result.Warnings) console.Error.WriteLine($"warning: {warning}");
        var m = t.PixelModel;
        writer.Parameters = new Dictionary<string, string>
        {
            [ImageFile.ParametersKey] = string.Join(", ", new[]
            {
                $"model: {Path.GetFileName(t.Source.TrimEnd('/'))}", $"sampler: {result.Sampler}",
                $"steps: {request.Steps}", $"seed: {request.Seed}", $"guidance: {request.Guidance}",
            }
            .Concat(m is null ? [$"size: {shape.Width}x{shape.Height}"]
                : [$"class: {p.GetValue(o.Class) ?? (m.NumClasses > 0 ? "all" : "none")}"])
            .Concat(p.GetValue(o.Eta) is double e ? [$"eta: {e}"] : [])
            .Concat(request.KnownImageNoise != KnownImageNoise.Fresh
                ? [$"known noise: {request.KnownImageNoise.ToString().ToLowerInvariant()}"] : [])
            // the prompts last, each on its own line, as A1111-style readers expect them
            .Concat(request.Prompt is { } prompt ? [$"\nprompt: {prompt}"] : [])
            .Concat(request.NegativePrompt is { } negative ? [$"\nnegative prompt: {negative}"] : [])),
            ["Software"] = "Diffusion for .NET",
        };
        var written = writer.Write(result, p.GetValue(o.Columns));
        var shown = writer.Scale > 1 ? $" shown {writer.Scale}×" : "";
        console.Out.WriteLine($"wrote {written}{(replacing ? " (replacing the earlier output)" : "")}: "
            + $"{result.Count} images {shape.Channels}×{shape.Height}×{shape.Width}{shown}, {result.Sampler}, "
            + $"{result.EvaluationsPerImage:0.#} network evaluations per image, {result.TotalTime.TotalSeconds:0.00} s "
            + $"({result.ModelTime.TotalSeconds:0.00} s in the {(m is null ? "UNet" : "model")}"
            + (m is null ? $", {result.TextEncoderTime.TotalSeconds:0.00} s text encoder, "
                + $"{result.VaeTime.TotalSeconds:0.00} s VAE" : "") + $", {t.Device})");
        return ExitCodes.Ok;
    }

    /// <summary>The images' count and starting points: --init-noise, and for the edits --image (and --mask).</summary>
    private static Inputs LoadInputs(SampleOptions o, Mode mode, ParseResult p, Target t)
    {
        float[]? init = null;
        int n = p.GetValue(o.Count) ?? (t.PixelModel is null ? TextToImageCount : new GenerationRequest().Count);
        var shape = t.Pixels;
        if (p.GetValue(o.InitNoise) is { } noisePath)
        {
            var array = Npy.Load(noisePath, t.Noise.Channels, t.Noise.Height, t.Noise.Width);
            var s = array.Shape;
            if (p.GetValue(o.Count) is int c && c != s[0])
                throw new DiffusionException($"--init-noise '{noisePath}' holds {s[0]} images but --count is {c}.");
            n = s[0];
            init = array.Data;
        }
        if (mode == Mode.Sample) return new Inputs(n, init, null, null);
        var loaded = LoadImages(p.GetValue(o.Image)!, shape, o.Images.Input(p, shape, t.Source));
        n = p.GetValue(o.Count) ?? loaded.Count;
        if ((long)n * shape.Size > Array.MaxLength)
            throw new DiffusionArgumentException("--count",
                $"{n}: {n} images of {shape.Size:N0} values are more than one run holds (2³¹ values).");
        var images = Repeat(loaded.Images, loaded.Count, n, shape.Size);
        if (mode != Mode.Inpaint) return new Inputs(n, init, images, null);
        var keepWhite = p.GetValue(o.MaskKeeps)!.ToLowerInvariant() switch
        {
            "white" => true,
            "black" => false,
            var other => throw new DiffusionArgumentException("--mask-keeps",
                $"'{other}': expected black (diffusers' convention) or white."),
        };
        var loadedMask = LoadMask(p.GetValue(o.Mask)!, shape, o.Images.Mask(p, shape, t.Source), keepWhite);
        return new Inputs(n, init, images, Repeat(loadedMask.Images, loadedMask.Count, n, shape.Size));
    }

    /// <summary>The request the options describe: only what was given, the library's defaults for the rest.</summary>
    private static GenerationRequest Request(SampleOptions o, Mode mode, ParseResult p, DiffusionModel? m,
        Inputs inputs) => new()
        {
            InitialImages = mode == Mode.Img2Img ? inputs.Images : null,
            KnownImages = mode == Mode.Inpaint ? inputs.Images : null,
            Mask = inputs.Mask,
            KnownImageNoise = mode == Mode.Inpaint ? KnownNoise(p.GetValue(o.KnownNoise)!) : KnownImageNoise.Fresh,
            Strength = mode == Mode.Img2Img ? p.GetValue(o.Strength) : 1,
            Sampler = p.GetValue(o.Sampler),
            Steps = p.GetValue(o.Steps),
            Count = inputs.Count,
            Seed = p.GetValue(o.Seed),
            BatchSize = p.GetValue(o.Batch),
            Guidance = p.GetValue(o.Guidance) ?? (m is null ? TextToImageGuidance : 1),
            ClassLabels = m is null ? [] : Labels(m, p.GetValue(o.Class), inputs.Count),
            Prompt = p.GetValue(o.Prompt),
            NegativePrompt = p.GetValue(o.NegativePrompt),
            Width = p.GetValue(o.Width),
            Height = p.GetValue(o.Height),
            InitialNoise = inputs.InitialNoise,
            Spacing = p.GetValue(o.Spacing) is { } sp ? Parse(() => TimestepSpacings.Parse(sp), "--spacing") : null,
            KarrasSigmas = p.GetValue(o.Karras),
            Options = new SamplerOptions
            {
                Resampling = mode == Mode.Inpaint ? p.GetValue(o.Jumps) : 1,
                Eta = p.GetValue(o.Eta),
                RelativeTolerance = p.GetValue(o.RelativeTolerance),
                AbsoluteTolerance = p.GetValue(o.AbsoluteTolerance),
                Snr = p.GetValue(o.Snr),
            },
        };

    private static KnownImageNoise KnownNoise(string value) => value.ToLowerInvariant() switch
    {
        "fresh" => KnownImageNoise.Fresh,
        "initial" => KnownImageNoise.Initial,
        _ => throw new DiffusionArgumentException("--known-noise", $"'{value}': expected fresh or initial."),
    };

    /// <summary>A text-to-image model's default guidance weight: diffusers' StableDiffusionPipeline's.</summary>
    public const float TextToImageGuidance = 7.5f;

    /// <summary>
    /// A text-to-image request's default number of images: one, as diffusers' StableDiffusionPipeline
    /// (num_images_per_prompt); latent models at their sizes make a grid of 16 a long and memory-hungry default.
    /// </summary>
    public const int TextToImageCount = 1;

    private static async Task<GenerationResult> Generate(CliConsole console, IImageGenerator generator,
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
    /// A mask: an image (black = keep, white = repaint, as diffusers; or the reverse with <paramref name="keepWhite"/>;
    /// read at the model's channels, so a gray mask applies to all) or .npy of 1 = keep, 0 = repaint [N,C,H,W].
    /// </summary>
    private static (float[] Images, int Count) LoadMask(string path, ImageShape m, ImageReadOptions read,
        bool keepWhite)
    {
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return LoadImages(path, m, read);
        if (!File.Exists(path)) throw new DiffusionException($"--mask '{path}' does not exist.");
        var picture = ImageFile.Read(path, read);
        var mask = new float[m.Size];
        int plane = m.Width * m.Height;
        for (int c = 0; c < m.Channels; c++)
            for (int i = 0; i < plane; i++)
            {
                byte v = picture.Pixels[i * m.Channels + c];
                mask[c * plane + i] = v switch
                {
                    0 => keepWhite ? 0 : 1,
                    255 => keepWhite ? 1 : 0,
                    _ => throw new DiffusionException($"--mask '{path}' is not binary: pixel " +
                        $"({i % m.Width}, {i / m.Width}) is {v} after fitting it to {m.Width}×{m.Height}; use 0 " +
                        $"(black: {(keepWhite ? "repaint" : "keep")}) or 255 " +
                            $"(white: {(keepWhite ? "keep" : "repaint")}) " +
                        $"in a lossless format such as PNG."),
                };
            }
        return (mask, 1);
    }

    /// <summary>
    /// An image file (one image, fitted to the model as <paramref name="read"/> says) or a .npy [N,C,H,W] in [−1, 1],
    /// checked against the model's image shape.
    /// </summary>
    internal static (float[] Images, int Count) LoadImages(string path, ImageShape m, ImageReadOptions read)
    {
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            var array = Npy.Load(path, m.Channels, m.Height, m.Width);
            if (array.Shape[0] == 0) throw new DiffusionException($"'{path}' holds no images.");
            return (array.Data, array.Shape[0]);
        }
        if (!File.Exists(path)) throw new DiffusionException($"--image '{path}' does not exist.");
        return (ImageFile.ReadTensor(path, read).Data, 1);
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

    private static T Parse<T>(Func<T> parse, string option)
    {
        try { return parse(); }
        catch (ArgumentException e) { throw new DiffusionException($"{option}: {e.Message}", e); }
    }
}
