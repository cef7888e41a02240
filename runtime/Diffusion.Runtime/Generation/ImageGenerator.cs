using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Generation;

/// <summary>
/// Generates images from a model: validates the request, draws x_T per image from the keyed noise (or takes the
/// caller's), runs the sampler over micro-batches of at most <see cref="GenerationRequest.BatchSize"/> images, and
/// refuses to return non-finite pixels.
/// </summary>
/// <remarks>
/// Thread safety: an <see cref="ImageGenerator"/> holds no state between calls, and any number of
/// <see cref="Generate"/> / <see cref="GenerateAsync"/> calls may run at once on one generator or on several over one
/// <see cref="DiffusionModel"/>: each call allocates its own buffers and ONNX Runtime bindings, and the model's session
/// is safe for concurrent runs. Images do not depend on concurrency or batch size.
/// </remarks>
public sealed class ImageGenerator(DiffusionModel model) : IImageGenerator
{
    /// <summary>The model.</summary>
    public DiffusionModel Model { get; } = model ?? throw new ArgumentNullException(nameof(model));

    /// <summary>
    /// The largest classifier-free guidance weight (useful ones are 1…20; far above, the images saturate to ±1).
    /// </summary>
    public const float MaxGuidance = 100;

    /// <summary>The most sampling steps a request may ask for (more resolve nothing and only cost memory).</summary>
    public const int MaxSteps = 10_000;

    /// <summary>
    /// The most memory one request's buffers may take (see <see cref="MemoryEstimate(GenerationRequest)"/>), checked before anything is
    /// allocated. Default: <see cref="DefaultMemoryBudget"/>.
    /// </summary>
    public long MemoryBudget
    {
        get;
        init => field = value > 0 ? value
            : throw new DiffusionArgumentException(nameof(MemoryBudget), $"expected a positive size, got {value}.");
    } = DefaultMemoryBudget;

    /// <summary>
    /// A quarter of the memory this process may use (the machine's, or its container's limit): room for the network's
    /// own activations, which come on top, and for other requests.
    /// </summary>
    public static long DefaultMemoryBudget => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4;

    /// <summary>
    /// Float32 buffers a network call's images hold besides x_t and the output: the sampler's state (x, x̂₀, ε̂, the
    /// multistep history, the noise) and the guided combination — the most any sampler here keeps.
    /// </summary>
    private const int WorkingBuffersPerImage = 8;

    /// <summary>
    /// Bytes <paramref name="request"/> allocates: the result (Count images), and for one micro-batch the bound input
    /// and output of the network (doubled by guidance) and the sampler's buffers. The network's activations, which ONNX
    /// Runtime allocates, come on top.
    /// </summary>
    public long MemoryEstimate(GenerationRequest request) => MemoryEstimate(request, Model.Shape);

    internal static long MemoryEstimate(GenerationRequest request, ImageShape shape)
    {
        ArgumentNullException.ThrowIfNull(request);
        long d = shape.Size, perCall = Math.Min(request.BatchSize, request.Count);
        long network = perCall * (request.Guidance != 1 ? 2 : 1);
        return sizeof(float) * d * (request.Count + 2 * network + WorkingBuffersPerImage * perCall);
    }

    /// <inheritdoc />
    public ImageShape ImageShapeOf(GenerationRequest request) => Model.Shape;

    /// <summary>
    /// Runs <paramref name="request"/> on the thread pool; progress is reported per step and per batch, cancellation is
    /// checked every step.
    /// </summary>
    public Task<GenerationResult> GenerateAsync(GenerationRequest request,
        IProgress<GenerationProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Task.Run(() => Generate(request, progress, cancellation), cancellation);
    }

    /// <summary>Runs <paramref name="request"/> on the calling thread.</summary>
    public GenerationResult Generate(GenerationRequest request, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var sampler = Check(request);
        var outcome = SamplingRun.Run(Model, Model.Shape, ConditionsOf(request), request, sampler,
            Grid(request, sampler), progress, cancellation);
        return Result(request, sampler, outcome.Values) with
        {
            NetworkCalls = outcome.Evaluations,
            EvaluationsPerImage = outcome.EvaluationsPerImage,
            ModelTime = outcome.ModelTime,
            TotalTime = outcome.TotalTime,
        };
    }

    /// <summary>
    /// What <paramref name="request"/>'s network calls are conditioned on: its <see cref="GenerationRequest.Condition"/>
    /// pair, else its class labels (the null label where there are none), guided at its weight.
    /// </summary>
    public Conditions ConditionsOf(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return (request.Condition is { } condition
            ? new Conditions
            {
                Conditional = condition, Unconditional = request.UnconditionalCondition, Guidance = request.Guidance,
            }
            : ClassConditions.For(Model, request.ClassLabels, request.Guidance))
            with { Concatenated = request.ConcatenatedChannels };
    }

    /// <summary>
    /// Refuses <paramref name="request"/> as <see cref="Generate"/> would, without running it (a server checks before
    /// it queues); returns the sampler it resolves to.
    /// </summary>
    public ISampler Check(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Prompt is not null || request.NegativePrompt is not null)
            throw new DiffusionArgumentException(request.Prompt is not null ? nameof(request.Prompt)
                : nameof(request.NegativePrompt), $"model '{Model.Source}' is not text-conditioned; a prompt needs a " +
                    "text-to-image model folder (tokenizer, text encoder, UNet, VAE) loaded as a TextToImagePipeline.");
        if ((request.Width ?? Model.Width) != Model.Width || (request.Height ?? Model.Height) != Model.Height)
            throw new DiffusionArgumentException(request.Width != Model.Width ? nameof(request.Width)
                : nameof(request.Height), $"model '{Model.Source}' makes {Model.Width}×{Model.Height} images.");
        return CheckAt(request, Model.Shape);
    }

    /// <summary>
    /// <see cref="Check"/> for the sampling loop at <paramref name="shape"/> (a latent pipeline's latents): everything
    /// but the request's pixel-level fields, which its pipeline checks.
    /// </summary>
    internal ISampler CheckAt(GenerationRequest request, ImageShape shape)
    {
        Model.ThrowIfDisposed();
        var sampler = ResolveSampler(request);
        Validate(request, shape);
        return sampler;
    }

    /// <summary>
    /// The sampler <paramref name="request"/> runs on this model, resolved once per request: its
    /// <see cref="GenerationRequest.SamplerInstance"/>, or the one it names (or the model's default) with its options;
    /// checked, with knobs it does not read refused.
    /// </summary>
    public ISampler ResolveSampler(GenerationRequest request)
    {
        ISampler sampler;
        if (request.SamplerInstance is { } instance)
        {
            if (request.Sampler is not null)
                throw new DiffusionArgumentException(nameof(GenerationRequest.Sampler),
                    $"'{Imaging.Printable.Of(request.Sampler, 60)}' was named, and a {instance.Name} sampler given "
                        + "as an instance; give one of them.");
            foreach (var (parameter, knob) in request.Options.Set())
                if (knob != SamplerKnobs.Resampling)
                    throw new DiffusionArgumentException(parameter,
                        $"the {instance.Name} sampler was given as an instance; set its own settings instead.");
            sampler = instance;
        }
        else
        {
            var name = request.Sampler
                ?? (Model.Config.Scheduler is not null ? SamplerRegistry.DiffusersName : SamplerRegistry.DefaultName);
            sampler = !SamplerRegistry.IsDiffusers(name) ? SamplerRegistry.Create(name, request.Options)
                : Model.Config.Scheduler is { } scheduler ? new Diffusers.DiffusersSampler(scheduler)
                : throw new DiffusionArgumentException(nameof(GenerationRequest.Sampler),
                    "'diffusers' walks the scheduler a diffusers config names (its _class_name), and this model's "
                    + "config names none.");
        }
        SamplerRegistry.CheckKnobs(sampler.Info, request.Options); // whichever way it was chosen
        sampler.Validate();
        return sampler;
    }

    /// <summary>The noise levels <paramref name="request"/> visits.</summary>
    public NoiseLevel[] Grid(GenerationRequest request) => Grid(request, ResolveSampler(request));

    /// <summary>The noise levels <paramref name="request"/> visits with <paramref name="sampler"/>, already resolved.</summary>
    internal NoiseLevel[] Grid(GenerationRequest request, ISampler sampler)
    {
        CheckSteps(request.Steps);
        if (sampler.OwnGrid(Model.Schedule, request.Steps, request.Spacing, request.KarrasSigmas) is { } own)
            return own;
        var spacing = request.Spacing ?? TimestepSpacings.Parse(Model.Config.TimestepSpacing);
        try
        {
            return SamplingGrid.Create(Model.Schedule, request.Steps, new GridOptions
            {
                Spacing = spacing,
                Karras = request.KarrasSigmas ?? Model.Config.UseKarrasSigmas,
                StepsOffset = Model.Config.StepsOffset,
                Multistep = sampler.Info.IsMultistep,
            });
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new DiffusionArgumentException(nameof(GenerationRequest.Steps),
                $"{request.Steps}: {e.Message.Split(" (Parameter")[0]}", e);
        }
    }

    private static void CheckSteps(int steps)
    {
        if (steps <= 0 || steps > MaxSteps)
            throw new DiffusionArgumentException(nameof(GenerationRequest.Steps),
                $"expected 1…{MaxSteps:N0} sampling steps, got {steps}.");
    }

    private GenerationResult Result(GenerationRequest request, ISampler sampler, float[] images) =>
        new(images, request.Count, Model.Channels, Model.Height, Model.Width) { Sampler = sampler.Name };

    private void Validate(GenerationRequest r, ImageShape shape)
    {
        CheckSteps(r.Steps);
        if (r.Count <= 0)
            throw new DiffusionArgumentException(nameof(r.Count),
                $"expected a positive number of images, got {r.Count}.");
        if ((long)r.Count * shape.Size > Array.MaxLength)
            throw new DiffusionArgumentException(nameof(r.Count), $"{r.Count} images of {shape.Size:N0} values "
                + "are more than one result holds (2³¹ values); generate them in several runs.");
        if (r.BatchSize <= 0)
            throw new DiffusionArgumentException(nameof(r.BatchSize),
                $"expected a positive number of images per network call, got {r.BatchSize}.");
        if (r.FirstImage < 0 || r.FirstImage > long.MaxValue - r.Count)
            throw new DiffusionArgumentException(nameof(r.FirstImage),
                $"expected an image index ≥ 0 with room for {r.Count} images after it, got {r.FirstImage}.");
        ValidateConditioning(r);
        ValidateFixedBatch(r);
        ValidateImages(r, shape);
        ValidateMemory(r, shape);
    }

    private void ValidateMemory(GenerationRequest r, ImageShape shape)
    {
        long need = MemoryEstimate(r, shape);
        if (need <= MemoryBudget) return;
        static string GiB(long bytes) => $"{bytes / (double)(1L << 30):0.0} GiB";
        int perCall = Math.Min(r.BatchSize, r.Count);
        throw new DiffusionArgumentException(perCall > 1 ? nameof(r.BatchSize) : nameof(r.Count),
            $"{r.Count} image(s) of {shape} at {perCall} per network call need "
            + $"about {GiB(need)} for the result and the sampler's buffers (the network's activations come on top), "
            + $"over the budget of {GiB(MemoryBudget)}"
            + (MemoryBudget == DefaultMemoryBudget
                ? $" (a quarter of the {GiB(4 * DefaultMemoryBudget)} this process may use)" : "")
            + "; generate fewer images per call or per run.");
    }

    private void ValidateConditioning(GenerationRequest r)
    {
        const string guidance = nameof(GenerationRequest.Guidance);
        if (!(r.Guidance >= 0 && r.Guidance <= MaxGuidance))
            throw new DiffusionArgumentException(guidance, $"expected a weight in 0…{MaxGuidance}, got {r.Guidance}.");
        if (r.Condition is not null || r.UnconditionalCondition is not null)
        {
            if (r.Condition is null)
                throw new DiffusionArgumentException(nameof(r.UnconditionalCondition),
                    "an unconditional condition was given without the condition it is contrasted with.");
            if (r.ClassLabels.Length > 0)
                throw new DiffusionArgumentException(nameof(r.ClassLabels),
                    "class labels and a Condition were both given; put the labels in the Condition, or give only them.");
            if (r.Guidance == 1 && r.UnconditionalCondition is not null)
                throw new DiffusionArgumentException(nameof(r.UnconditionalCondition),
                    "an unconditional condition only serves guidance; set a guidance weight other than 1.");
        }
        else
        {
            if (Model.ConditioningInputs.FirstOrDefault(c => c.Name != Model.ClassLabelsInput) is { } other)
                throw new DiffusionArgumentException(nameof(r.Condition), $"model '{Model.Source}' takes " +
                    $"'{other.Name}' ({other.Description}); give its value in a Condition.");
            ValidateClassLabels(r);
        }
        Samplers.Denoiser.CheckConditions(Model, ConditionsOf(r), r.Count);
    }

    private void ValidateClassLabels(GenerationRequest r)
    {
        const string guidance = nameof(GenerationRequest.Guidance), labels = nameof(GenerationRequest.ClassLabels);
        if (r.Guidance != 1 && Model.NumClasses == 0)
            throw new DiffusionArgumentException(guidance, $"{r.Guidance}: model '{Model.Source}' is not "
                + "class-conditional, so classifier-free guidance does not apply; leave the weight at 1.");
        if (r.Guidance != 1 && r.ClassLabels.Length == 0)
            throw new DiffusionArgumentException(guidance,
                $"{r.Guidance} needs a class to guide towards; give a class label.");
        if (Model.NumClasses > 0 && !Model.HasNullClass)
        {
            if (r.Guidance != 1)
                throw new DiffusionArgumentException(guidance,
                    $"{r.Guidance}: model '{Model.Source}' has no null label "
                    + $"(its class embedding holds only classes 0…{Model.NumClasses - 1}), so classifier-free guidance "
                    + "does not apply; leave the weight at 1.");
            if (r.ClassLabels.Length == 0)
                throw new DiffusionArgumentException(labels, $"model '{Model.Source}' has no null label for "
                    + $"unconditional sampling; give a class 0…{Model.NumClasses - 1} (one, or one per image).");
        }
        if (r.ClassLabels.Length == 0) return;
        if (Model.NumClasses == 0)
            throw new DiffusionArgumentException(labels, $"model '{Model.Source}' is not class-conditional.");
        if (r.ClassLabels.Length != 1 && r.ClassLabels.Length != r.Count)
            throw new DiffusionArgumentException(labels,
                $"{r.ClassLabels.Length} class labels were given for {r.Count} images; give one, or one per image.");
        foreach (var label in r.ClassLabels)
            if (label < 0 || label >= Model.NumClasses)
                throw new DiffusionArgumentException(labels,
                    $"{label}: model '{Model.Source}' has classes 0…{Model.NumClasses - 1}.");
    }

    private void ValidateFixedBatch(GenerationRequest r)
    {
        if (Model.FixedBatch is not int fixedBatch) return;
        // The network batch is the images per call, doubled by guidance; a fixed-batch graph takes only that size.
        bool guided = r.Guidance != 1;
        if (guided && fixedBatch % 2 != 0)
            throw new DiffusionArgumentException(nameof(r.Guidance), $"model '{Model.Source}' takes a fixed batch of "
                + $"{fixedBatch}; classifier-free guidance doubles the batch, so it needs an even one. Leave the "
                + "weight at 1, or export the model with a dynamic batch.");
        int perCall = guided ? fixedBatch / 2 : fixedBatch;
        if (r.BatchSize != perCall || r.Count % perCall != 0)
            throw new DiffusionArgumentException(r.BatchSize != perCall ? nameof(r.BatchSize) : nameof(r.Count),
                $"model '{Model.Source}' takes a fixed batch of {fixedBatch}: use {perCall} images per call"
                + $"{(guided ? " (guidance doubles it)" : "")} and a count that is a multiple of {perCall}.");
    }

    private void ValidateImages(GenerationRequest r, ImageShape shape)
    {
        Samplers.Denoiser.CheckConcatenated(Model, ConditionsOf(r), shape, r.Count);
        if (r.Options.Resampling < 1)
            throw new DiffusionArgumentException(nameof(SamplerOptions.Resampling),
                $"expected at least 1, got {r.Options.Resampling}.");
        if (r.Options.Resampling != 1 && r.Mask is null)
            throw new DiffusionArgumentException(nameof(SamplerOptions.Resampling),
                "RePaint resampling applies to inpainting; give the known images and the mask.");
        if (r.KnownImageNoise != Editing.KnownImageNoise.Fresh && r.Mask is null)
            throw new DiffusionArgumentException(nameof(r.KnownImageNoise),
                "the known images' noise applies to inpainting; give the known images and the mask.");
        if (!Enum.IsDefined(r.KnownImageNoise))
            throw new DiffusionArgumentException(nameof(r.KnownImageNoise), $"{(int)r.KnownImageNoise} is not one " +
                $"of {string.Join(", ", Enum.GetNames<Editing.KnownImageNoise>())}.");
        if (r.KnownImages is not null || r.Mask is not null)
        {
            if (r.KnownImages is null || r.Mask is null)
                throw new DiffusionArgumentException(r.KnownImages is null ? nameof(r.KnownImages) : nameof(r.Mask),
                    "inpainting needs both the known images and the mask.");
            CheckLength(nameof(r.KnownImages), "the inpainting images", r.KnownImages, r.Count, shape);
        }
        if (r.InitialImages is { } inputs)
        {
            CheckLength(nameof(r.InitialImages), "the input images", inputs, r.Count, shape);
            if (!(r.Strength > 0 && r.Strength <= 1))
                throw new DiffusionArgumentException(nameof(r.Strength),
                    $"expected a value in (0, 1], got {r.Strength}.");
        }
        if (r.InitialNoise is { } init) CheckLength(nameof(r.InitialNoise), "the initial noise", init, r.Count, shape);
    }

    private static void CheckLength(string parameter, string what, float[] values, int count, ImageShape shape)
    {
        if (values.Length != (long)count * shape.Size)
            throw new DiffusionArgumentException(parameter, $"{what} hold {values.Length} values but {count} images of "
                + $"{shape} need {(long)count * shape.Size}.");
    }
}
