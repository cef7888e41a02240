using System.Diagnostics;
using System.Numerics.Tensors;
using System.Text.Json.Nodes;
using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Text;
using Diffusion.Runtime.Vae;

namespace Diffusion.Runtime.Pipelines;

/// <summary>
/// Latent text-to-image generation from a Stable Diffusion-layout folder (model_index.json; tokenizer/, text_encoder/,
/// unet/, vae_decoder/, optionally vae_encoder/, scheduler/), as diffusers' StableDiffusionPipeline: the prompts
/// tokenized and encoded once per request, the sampling loop in latent space with the prompt's embedding as the UNet's
/// <c>encoder_hidden_states</c> (and the negative or empty prompt's for guidance, in the same batched call), then
/// x = VAE-decode(z / scaling_factor) image by image. img2img encodes the input images with vae_encoder first;
/// inpainting encodes the known images and blends them into every step in latent space (RePaint-style, the mask taken
/// on the latent grid, as diffusers' legacy inpainting pipeline does).
/// </summary>
/// <remarks>
/// Thread safety as <see cref="ImageGenerator"/>: any number of generations may run at once on one pipeline.
/// </remarks>
public sealed class TextToImagePipeline : IImageGenerator, IDisposable
{
    /// <summary>The UNet input the text embedding feeds.</summary>
    public const string HiddenStatesInput = "encoder_hidden_states";

    /// <summary>The longest prompt taken, in characters (the text encoder reads 77 tokens of it).</summary>
    public const int MaxPromptLength = 16_384;

    private readonly ImageGenerator _loop;

    private TextToImagePipeline(ModelIndex index, ClipTokenizer tokenizer, TextEncoder textEncoder,
        DiffusionModel unet, VaeDecoder vaeDecoder, VaeEncoder? vaeEncoder)
    {
        Index = index;
        Tokenizer = tokenizer;
        TextEncoder = textEncoder;
        Unet = unet;
        VaeDecoder = vaeDecoder;
        VaeEncoder = vaeEncoder;
        _loop = new ImageGenerator(unet);
    }

    /// <summary>The folder's model_index.json.</summary>
    public ModelIndex Index { get; }
    /// <summary>The tokenizer.</summary>
    public ClipTokenizer Tokenizer { get; }
    /// <summary>The text encoder.</summary>
    public TextEncoder TextEncoder { get; }
    /// <summary>The UNet with its scheduler config.</summary>
    public DiffusionModel Unet { get; }
    /// <summary>The VAE decoder.</summary>
    public VaeDecoder VaeDecoder { get; }
    /// <summary>The VAE encoder (img2img), or null where the folder has none.</summary>
    public VaeEncoder? VaeEncoder { get; }
    /// <summary>Pixels per latent along each side.</summary>
    public int Factor => VaeDecoder.Config.DownsamplingFactor;
    /// <summary>The default image width: the UNet's sample size in pixels.</summary>
    public int Width => Unet.Width * Factor;
    /// <summary>The default image height.</summary>
    public int Height => Unet.Height * Factor;

    /// <summary>Whether <paramref name="path"/> is a text-to-image folder: a model_index.json and a text encoder.</summary>
    public static bool IsFolder(string path) => Directory.Exists(path) && ModelIndex.IsIn(path)
        && Directory.Exists(Path.Combine(path, "text_encoder"));

    /// <summary>Loads <paramref name="folder"/>; every component is checked against the others before it returns.</summary>
    public static TextToImagePipeline Load(string folder, PipelineOptions? options = null)
    {
        options ??= new PipelineOptions();
        var index = ModelIndex.Read(folder);
        var tokenizerFolder = Path.GetDirectoryName(index.Require("tokenizer", "vocab.json"))!;
        index.Require("tokenizer", "merges.txt");
        var textEncoderFile = index.Require("text_encoder", "model.onnx");
        index.Require("unet", "model.onnx");
        var decoderFile = index.Require("vae_decoder", "model.onnx");
        var encoderFile = Path.Combine(folder, "vae_encoder", "model.onnx");
        var owned = new List<IDisposable>();
        try
        {
            var tokenizer = ClipTokenizer.Load(tokenizerFolder);
            var textEncoder = Own(new TextEncoder(textEncoderFile, options.TextEncoder ?? options.Session));
            var unet = Own(DiffusionModel.Load(folder, new ModelOptions { Session = options.Unet ?? options.Session }));
            var decoder = Own(new VaeDecoder(decoderFile, settings: options.Vae ?? options.Session));
            var encoder = File.Exists(encoderFile)
                ? Own(new VaeEncoder(encoderFile, settings: options.Vae ?? options.Session)) : null;
            CheckTogether(folder, tokenizer, textEncoder, unet, decoder);
            return new TextToImagePipeline(index, tokenizer, textEncoder, unet, decoder, encoder);
        }
        catch
        {
            for (int i = owned.Count - 1; i >= 0; i--) owned[i].Dispose();
            throw;
        }

        T Own<T>(T component) where T : IDisposable
        {
            owned.Add(component);
            return component;
        }
    }

    private static void CheckTogether(string folder, ClipTokenizer tokenizer, TextEncoder textEncoder,
        DiffusionModel unet, VaeDecoder decoder)
    {
        var states = unet.ConditioningInputs.FirstOrDefault(c => c.Name == HiddenStatesInput)
            ?? throw new DiffusionException($"Model folder '{folder}': the UNet ({unet.Source}) has no " +
                $"'{HiddenStatesInput}' input for the text embedding (its conditioning inputs: " +
                    $"{string.Join(", ", unet.ConditioningInputs.Select(c => c.Name).DefaultIfEmpty("none"))}).");
        if (unet.ConditioningInputs.FirstOrDefault(c => c.Name != HiddenStatesInput) is { } other)
            throw new DiffusionException($"Model folder '{folder}': the UNet also takes '{other.Name}' " +
                $"({other.Description}), which this pipeline does not feed (SDXL's added conditions are not supported).");
        if (states.IsInteger || states.EntryDimensions.Length != 2)
            throw new DiffusionException($"Model folder '{folder}': the UNet's '{HiddenStatesInput}' is " +
                $"{states.Description}; expected float [batch, sequence, width].");
        long width = states.EntryDimensions[1];
        var unetConfig = Path.Combine(folder, "unet", "config.json");
        if (width <= 0 && File.Exists(unetConfig)
            && PythonJson.ReadObject(unetConfig)["cross_attention_dim"] is JsonValue v && v.TryGetValue<int>(out var dim))
            width = dim;
        if (width > 0 && width != textEncoder.HiddenSize)
            throw new DiffusionException($"Model folder '{folder}': the UNet's cross-attention width is {width} " +
                $"({states.Description}), but the text encoder's hidden size is {textEncoder.HiddenSize}; the two " +
                    "come from different models.");
        if (textEncoder.SequenceLength is int length && length != tokenizer.Config.ModelMaxLength)
            throw new DiffusionException($"Model folder '{folder}': the text encoder reads {length} tokens, but the " +
                $"tokenizer pads to {tokenizer.Config.ModelMaxLength} ({tokenizer.Config.Source}).");
        if (textEncoder.Config.MaxPositionEmbeddings is int positions && positions < tokenizer.Config.ModelMaxLength)
            throw new DiffusionException($"Model folder '{folder}': the tokenizer pads to " +
                $"{tokenizer.Config.ModelMaxLength} tokens, more than the text encoder's {positions} positions.");
        if (unet.ConcatChannels == 0 && unet.Channels == 2 * decoder.Config.LatentChannels + 1)
            throw new DiffusionException($"Model folder '{folder}': the UNet takes {unet.Channels} channels — an " +
                "inpainting UNet's latents, mask and masked-image latents — but its graph leaves the output's channel " +
                    "count open, so the latents cannot be told from the rest; export it with a fixed channel count.");
        if (unet.ConcatChannels != 0 && unet.ConcatChannels != decoder.Config.LatentChannels + 1)
            throw new DiffusionException($"Model folder '{folder}': the UNet reads {unet.ConcatChannels} channels " +
                $"after its {unet.Channels} latent ones; this pipeline drives {decoder.Config.LatentChannels + 1} " +
                    "(diffusers' inpainting UNet: the mask and the masked image's latents).");
        if (unet.Channels != decoder.Config.LatentChannels)
            throw new DiffusionException($"Model folder '{folder}': the UNet takes {unet.Channels} channels, but the " +
                $"VAE's latents have {decoder.Config.LatentChannels} ({decoder.Config.Source}).");
    }

    /// <summary>
    /// Whether the UNet is diffusers' inpainting UNet: it reads the latent mask (1 = repaint) and the masked image's
    /// latents after the latents, so inpainting feeds it those instead of blending the known region in.
    /// </summary>
    public bool IsInpaintingUnet => Unet.ConcatChannels > 0;

    /// <summary>
    /// Refuses <paramref name="request"/> as <see cref="Generate"/> would, before any component runs; returns the
    /// sampler it resolves to.
    /// </summary>
    public ISampler Check(GenerationRequest request) => Plan(request).Sampler;

    /// <inheritdoc />
    public ImageShape ImageShapeOf(GenerationRequest request) =>
        new(VaeDecoder.Config.OutChannels, request.Height ?? Height, request.Width ?? Width);

    private sealed record RequestPlan(ISampler Sampler, ImageShape Latent, int Width, int Height);

    private RequestPlan Plan(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        foreach (var (text, parameter) in new[]
        {
            (request.Prompt, nameof(request.Prompt)), (request.NegativePrompt, nameof(request.NegativePrompt)),
        })
            if (text is { Length: > MaxPromptLength })
                throw new DiffusionArgumentException(parameter, $"{text.Length:N0} characters; at most " +
                    $"{MaxPromptLength:N0} (the text encoder reads {Tokenizer.Config.ModelMaxLength} tokens).");
        if (request.ConcatenatedChannels is not null)
            throw new DiffusionArgumentException(nameof(request.ConcatenatedChannels), "a text-to-image pipeline " +
                "makes an inpainting UNet's channels from the known images and the mask; give those.");
        if (request.ClassLabels.Length > 0 || request.Condition is not null || request.UnconditionalCondition is not null)
            throw new DiffusionArgumentException(request.ClassLabels.Length > 0 ? nameof(request.ClassLabels)
                : nameof(request.Condition), "a text-to-image pipeline is conditioned by its prompts.");
        if (request.NegativePrompt is not null && request.Guidance == 1)
            throw new DiffusionArgumentException(nameof(request.NegativePrompt),
                "a negative prompt acts through classifier-free guidance; set a guidance weight other than 1.");
        int width = request.Width ?? Width, height = request.Height ?? Height;
        foreach (var (size, parameter) in new[] { (width, nameof(request.Width)), (height, nameof(request.Height)) })
            if (size <= 0 || size % Factor != 0)
                throw new DiffusionArgumentException(parameter, $"{size}: must be a positive multiple of {Factor} " +
                    $"(the VAE's downsampling factor, {VaeDecoder.Config.Source}).");
        var latent = Unet.ShapeAt(height / Factor, width / Factor, nameof(request.Height));
        if ((long)request.Count * VaeDecoder.Config.OutChannels * width * height > Array.MaxLength)
            throw new DiffusionArgumentException(nameof(request.Count), $"{request.Count} images of {width}×{height} " +
                "are more than one result holds (2³¹ values); generate them in several runs.");
        long pixels = (long)request.Count * VaeDecoder.Config.OutChannels * width * height;
        foreach (var (values, parameter, what) in new[]
        {
            (request.InitialImages, nameof(request.InitialImages), "img2img"),
            (request.KnownImages, nameof(request.KnownImages), "inpainting"),
        })
        {
            if (values is null) continue;
            if (VaeEncoder is null)
                throw new DiffusionArgumentException(parameter, $"{what} needs a VAE encoder, and model folder " +
                    $"'{Index.Folder}' has no vae_encoder/model.onnx.");
            if (values.Length != pixels)
                throw new DiffusionArgumentException(parameter, $"the {what} images hold {values.Length} values but " +
                    $"{request.Count} images of [{VaeDecoder.Config.OutChannels},{height},{width}] need {pixels}.");
        }
        if ((request.KnownImages is null) != (request.Mask is null))
            throw new DiffusionArgumentException(request.KnownImages is null ? nameof(request.KnownImages)
                : nameof(request.Mask), "inpainting needs both the known images and the mask.");
        if (request.Mask is { } mask && mask.Length != pixels)
            throw new DiffusionArgumentException(nameof(request.Mask), $"the mask holds {mask.Length} values but " +
                $"{request.Count} images of [{VaeDecoder.Config.OutChannels},{height},{width}] need {pixels}.");
        if (IsInpaintingUnet)
        {
            if (request.KnownImages is null)
                throw new DiffusionArgumentException(nameof(request.KnownImages), $"the UNet of '{Index.Folder}' is " +
                    "an inpainting UNet (it reads a mask and the masked image's latents): give the known images and " +
                        "the mask (inpaint).");
            if (request.KnownImageNoise != Editing.KnownImageNoise.Fresh || request.Options.Resampling != 1)
                throw new DiffusionArgumentException(request.Options.Resampling != 1
                    ? nameof(request.Options.Resampling) : nameof(request.KnownImageNoise), "the inpainting UNet " +
                        "reads the mask itself; nothing is blended in, so the known region's noise and RePaint's " +
                            "jumps do not apply.");
        }
        // The loop's own checks, on latents, with a stand-in embedding of the shape the text encoder returns.
        var standIn = Embedding(new float[Tokenizer.Config.ModelMaxLength * TextEncoder.HiddenSize]);
        float[]? Latents(float[]? pixelValues) => pixelValues is null ? null : new float[request.Count * latent.Size];
        var inputs = IsInpaintingUnet
            ? new LatentInputs(Latents(request.InitialImages), null, null, ConditioningTensor.FromFloats(
                new float[request.Count * (Unet.ConcatChannels * latent.Height * latent.Width)], request.Count,
                Unet.ConcatChannels, latent.Height, latent.Width))
            : new LatentInputs(Latents(request.InitialImages), Latents(request.KnownImages), Latents(request.Mask),
                null);
        var sampler = _loop.CheckAt(LoopRequest(request, standIn, request.Guidance != 1 ? standIn : null, inputs),
            latent);
        return new RequestPlan(sampler, latent, width, height);
    }

    private Condition Embedding(float[] values) => Condition.None.With(HiddenStatesInput,
        ConditioningTensor.FromFloats(values, 1, Tokenizer.Config.ModelMaxLength, TextEncoder.HiddenSize));

    /// <summary>
    /// A request's images in latent space: img2img's start, inpainting's known latents and latent mask — or, for an
    /// inpainting UNet, the channels it reads after the latents.
    /// </summary>
    private sealed record LatentInputs(float[]? Initial, float[]? Known, float[]? Mask,
        ConditioningTensor? Concatenated);

    /// <summary>The request the sampling loop runs: in latent space, conditioned on the prompts' embeddings.</summary>
    private static GenerationRequest LoopRequest(GenerationRequest request, Condition conditional,
        Condition? unconditional, LatentInputs latents) => request with
    {
        Prompt = null, NegativePrompt = null, Width = null, Height = null,
        Condition = conditional, UnconditionalCondition = unconditional,
        InitialImages = latents.Initial, KnownImages = latents.Known, Mask = latents.Mask,
        ConcatenatedChannels = latents.Concatenated,
    };

    /// <summary>
    /// The request's images encoded: img2img's input; inpainting's known image and latent mask, or for an inpainting
    /// UNet what it reads after the latents — the latent mask as diffusers gives it (1 = repaint), then the latents of
    /// the known image with the repainted region set to 0 (diffusers' masked_image).
    /// </summary>
    private LatentInputs LatentsOf(GenerationRequest request, RequestPlan plan, CancellationToken cancellation)
    {
        int count = request.Count;
        var initial = request.InitialImages is { } images ? EncodeImages(images, count, plan, cancellation) : null;
        if (request.KnownImages is not { } known || request.Mask is not { } mask) return new(initial, null, null, null);
        var keep = LatentMask(mask, count, plan, Factor);
        if (!IsInpaintingUnet) return new(initial, EncodeImages(known, count, plan, cancellation), keep, null);
        var masked = new float[known.Length];
        TensorPrimitives.Multiply(known, mask, masked);
        var maskedLatents = EncodeImages(masked, count, plan, cancellation);
        var (c, plane) = (plan.Latent.Channels, plan.Latent.Height * plan.Latent.Width);
        var channels = new float[count * (c + 1) * plane];
        for (int n = 0; n < count; n++)
        {
            var entry = channels.AsSpan(n * (c + 1) * plane, (c + 1) * plane);
            for (int i = 0; i < plane; i++) entry[i] = 1 - keep[n * c * plane + i];
            maskedLatents.AsSpan(n * c * plane, c * plane).CopyTo(entry[plane..]);
        }
        return new(initial, null, null, ConditioningTensor.FromFloats(channels, count, c + 1, plan.Latent.Height,
            plan.Latent.Width));
    }

    /// <summary>Each image of <paramref name="pixels"/> [Count, 3, H, W] encoded to UNet-space latents.</summary>
    private float[] EncodeImages(float[] pixels, int count, RequestPlan plan, CancellationToken cancellation)
    {
        var latents = new float[count * plan.Latent.Size];
        int size = pixels.Length / count;
        for (int i = 0; i < count; i++)
            VaeEncoder!.Encode(pixels.AsSpan(i * size, size), plan.Height, plan.Width, cancellation)
                .CopyTo(latents.AsSpan(i * plan.Latent.Size));
        return latents;
    }

    /// <summary>
    /// A pixel mask [Count, C, H, W] (1 = keep) on the latent grid: each latent cell takes the mask at its block's
    /// first pixel — torch's nearest-neighbour resize, floor(i · in/out), which diffusers' inpainting pipeline applies
    /// to the mask — of the first channel, for every latent channel.
    /// </summary>
    private static float[] LatentMask(float[] mask, int count, RequestPlan plan, int factor)
    {
        var (c, h, w) = (plan.Latent.Channels, plan.Latent.Height, plan.Latent.Width);
        var result = new float[count * plan.Latent.Size];
        int pixelsPerImage = mask.Length / count;
        for (int n = 0; n < count; n++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    float keep = mask[n * pixelsPerImage + y * factor * plan.Width + x * factor];
                    for (int k = 0; k < c; k++) result[n * plan.Latent.Size + (k * h + y) * w + x] = keep;
                }
        return result;
    }

    /// <inheritdoc />
    public Task<GenerationResult> GenerateAsync(GenerationRequest request,
        IProgress<GenerationProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Task.Run(() => Generate(request, progress, cancellation), cancellation);
    }

    /// <inheritdoc />
    public GenerationResult Generate(GenerationRequest request, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        var plan = Plan(request);
        var (conditional, unconditional, textTime, warnings) = EncodePrompts(request, cancellation);
        var vaeWatch = Stopwatch.StartNew();
        var latents = LatentsOf(request, plan, cancellation);
        vaeWatch.Stop();
        var loop = LoopRequest(request, conditional, unconditional, latents);
        var outcome = SamplingRun.Run(Unet, plan.Latent, _loop.ConditionsOf(loop), loop, plan.Sampler,
            _loop.Grid(loop, plan.Sampler), progress, cancellation);
        vaeWatch.Start();
        int c = VaeDecoder.Config.OutChannels, d = plan.Latent.Size, size = c * plan.Width * plan.Height;
        var result = new float[request.Count * size];
        for (int i = 0; i < request.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            VaeDecoder.Decode(outcome.Values.AsSpan(i * d, d), plan.Latent, cancellation)
                .CopyTo(result.AsSpan(i * size));
        }
        vaeWatch.Stop();
        return new GenerationResult(result, request.Count, c, plan.Height, plan.Width)
        {
            Sampler = plan.Sampler.Name,
            NetworkCalls = outcome.Evaluations,
            EvaluationsPerImage = outcome.EvaluationsPerImage,
            ModelTime = outcome.ModelTime,
            TotalTime = watch.Elapsed,
            Latents = outcome.Values,
            TextEncoderTime = textTime,
            VaeTime = vaeWatch.Elapsed,
            Warnings = warnings,
        };
    }

    /// <summary>
    /// The prompt's embedding and, with guidance, the negative (or empty) prompt's — one text-encoder run for both.
    /// </summary>
    private (Condition Conditional, Condition? Unconditional, TimeSpan Time, List<string> Warnings) EncodePrompts(
        GenerationRequest request, CancellationToken cancellation)
    {
        long start = Stopwatch.GetTimestamp();
        bool guided = request.Guidance != 1;
        var warnings = new List<string>();
        int[] Ids(string? text, string what)
        {
            var tokens = Tokenizer.Encode(text ?? "");
            if (tokens.Truncated is { } cut)
                warnings.Add($"The {what} was truncated: the text encoder reads {Tokenizer.Config.ModelMaxLength} " +
                    $"tokens, so it never saw \"{Imaging.Printable.Of(cut, 200)}\".");
            return tokens.Ids;
        }
        var prompts = new List<int[]> { Ids(request.Prompt, "prompt") };
        if (guided) prompts.Add(Ids(request.NegativePrompt, "negative prompt"));
        var states = TextEncoder.Encode(prompts, cancellation);
        int n = states.Length / prompts.Count;
        var conditional = Embedding(states[..n]);
        var unconditional = guided ? Embedding(states[n..]) : null;
        return (conditional, unconditional, Stopwatch.GetElapsedTime(start), warnings);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        VaeEncoder?.Dispose();
        VaeDecoder.Dispose();
        Unet.Dispose();
        TextEncoder.Dispose();
    }
}
