using System.Diagnostics;
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
/// Thread safety: an <see cref="ImageGenerator"/> holds no state between calls, and any number of <see cref="Generate"/>
/// / <see cref="GenerateAsync"/> calls may run at once on one generator or on several over one
/// <see cref="DiffusionModel"/>: each call allocates its own buffers and ONNX Runtime bindings, and the model's session
/// is safe for concurrent runs. Images do not depend on concurrency or batch size.
/// </remarks>
public sealed class ImageGenerator(DiffusionModel model)
{
    /// <summary>The model.</summary>
    public DiffusionModel Model { get; } = model;

    /// <summary>Runs <paramref name="request"/> on the thread pool; progress is reported per step and per batch, cancellation is checked every step.</summary>
    public Task<GenerationResult> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancellation = default) =>
        Task.Run(() => Generate(request, progress, cancellation), cancellation);

    /// <summary>Runs <paramref name="request"/> on the calling thread.</summary>
    public GenerationResult Generate(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancellation = default)
    {
        var sampler = request.ResolveSampler(Model.Config);
        sampler.Validate();
        Validate(request, sampler);
        var grid = Grid(request, sampler);
        if (request.InitialImages is not null)
        {
            // SDEdit: keep the last round(s·n) steps of the grid; the input is noised to the first of them.
            int keep = (int)Math.Round(request.Strength * request.Steps);
            if (keep == 0) return new GenerationResult((float[])request.InitialImages.Clone(), request.Count, Model.Channels, Model.Height, Model.Width);
            grid = grid[^(keep + 1)..];
        }
        int d = Model.ImageSize, count = request.Count;
        var images = new float[count * d]; // Validate bounds count × d by Array.MaxLength
        var watch = Stopwatch.StartNew();
        long calls = 0, modelTicks = 0;
        var labels = new long[request.BatchSize];
        Editing.Inpainting? inpainting = null;
        if (request.KnownImages is not null || request.Mask is not null)
        {
            if (request.KnownImages is null || request.Mask is null) throw new DiffusionException("Inpainting needs both the image and the mask.");
            if (request.KnownImages.Length != count * d)
                throw new DiffusionException($"The inpainting images hold {request.KnownImages.Length} values but {count} images of [{Model.Channels},{Model.Height},{Model.Width}] need {count * d}.");
            inpainting = new Editing.Inpainting(request.KnownImages, request.Mask, d);
        }
        // At most two batch sizes occur (full batches and the remainder); each gets its buffers and binding once.
        var contexts = new Dictionary<int, SamplingContext>();
        try
        {
            for (int start = 0; start < count; start += request.BatchSize)
            {
                int n = Math.Min(request.BatchSize, count - start);
                if (!contexts.TryGetValue(n, out var c))
                {
                    var denoiser = new Denoiser(Model, n, request.Guidance, cancellation);
                    int first = start;
                    contexts[n] = c = new SamplingContext(denoiser, grid, request.Seed, request.Options,
                        progress is null ? null : step => progress.Report(new GenerationProgress(Done(), count, step + 1, grid.Length - 1, Math.Min(request.BatchSize, count - Done()))),
                        cancellation);
                }
                cancellation.ThrowIfCancellationRequested();
                c.Begin(start);
                if (inpainting is not null)
                {
                    inpainting.Begin(start);
                    c.Constraint = inpainting;
                }
                var x = c.X.AsSpan();
                if (request.InitialNoise is { } init) init.AsSpan(start * d, n * d).CopyTo(x);
                else c.DrawInitialNoise(x);
                if (request.InitialImages is { } images0)
                {
                    // q(x_t | x₀) at the grid's first level, ε being the keyed x_T draw.
                    ForwardProcess.Sample(x, images0.AsSpan(start * d, n * d), x, grid[0]);
                }
                else if (sampler.InitialNoiseScale(grid[0]) is var scale and not 1)
                {
                    Vec.Scale(c.X, scale, c.X);
                }
                if (request.ClassLabels.Length > 0)
                {
                    for (int i = 0; i < n; i++)
                        labels[i] = request.ClassLabels.Length == 1 ? request.ClassLabels[0] : request.ClassLabels[start + i];
                    c.Model.SetLabels(labels.AsSpan(0, n));
                }
                sampler.Sample(c);
                CheckFinite(c.X, start);
                c.X.CopyTo(images.AsSpan(start * d, n * d));
                progress?.Report(new GenerationProgress(start + n, count, grid.Length - 1, grid.Length - 1));
                int Done() => start;
            }
        }
        finally
        {
            foreach (var c in contexts.Values)
            {
                calls += c.Model.Evaluations;
                modelTicks += c.Model.ModelTicks;
                c.Model.Dispose();
            }
        }
        int batches = (count + request.BatchSize - 1) / request.BatchSize;
        return new GenerationResult(images, count, Model.Channels, Model.Height, Model.Width)
        {
            NetworkCalls = calls,
            EvaluationsPerImage = (double)calls / batches,
            ModelTime = Stopwatch.GetElapsedTime(0, modelTicks),
            TotalTime = watch.Elapsed,
        };
    }

    /// <summary>The noise levels this request visits (with <paramref name="sampler"/>, default: the request's own).</summary>
    public NoiseLevel[] Grid(GenerationRequest request, ISampler? sampler = null)
    {
        if (request.Steps <= 0 || request.Steps > MaxSteps)
            throw new DiffusionArgumentException($"Steps must lie in 1…{MaxSteps:N0}, got {request.Steps}.");
        sampler ??= request.ResolveSampler(Model.Config);
        if (sampler.OwnGrid(Model.Schedule, request.Steps, request.Spacing, request.KarrasSigmas) is { } own) return own;
        var spacing = request.Spacing ?? TimestepSpacings.Parse(Model.Config.TimestepSpacing);
        try
        {
            return SamplingGrid.Create(Model.Schedule, request.Steps, new GridOptions
            {
                Spacing = spacing,
                Karras = request.KarrasSigmas ?? Model.Config.UseKarrasSigmas,
                StepsOffset = Model.Config.StepsOffset,
                Multistep = sampler.IsMultistep,
            });
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new DiffusionArgumentException($"Steps {request.Steps}: {e.Message.Split(" (Parameter")[0]}", e);
        }
    }

    /// <summary>The most sampling steps a request may ask for (more resolve nothing and only cost memory).</summary>
    public const int MaxSteps = 10_000;

    private void Validate(GenerationRequest r, ISampler sampler)
    {
        if (r.Steps <= 0) throw new DiffusionArgumentException($"Steps must be a positive number of sampling steps, got {r.Steps}.");
        if (r.Count <= 0) throw new DiffusionArgumentException($"Count must be a positive number of images, got {r.Count}.");
        if ((long)r.Count * Model.ImageSize > Array.MaxLength)
            throw new DiffusionArgumentException($"Count {r.Count}: {r.Count} images of {Model.ImageSize:N0} values are more than one result holds (2³¹ values); generate them in several runs.");
        if (r.Steps > MaxSteps) throw new DiffusionArgumentException($"Steps {r.Steps}: at most {MaxSteps:N0} sampling steps.");
        if (r.BatchSize <= 0) throw new DiffusionArgumentException($"BatchSize must be a positive number of images per network call, got {r.BatchSize}.");
        if (!float.IsFinite(r.Guidance) || r.Guidance < 0) throw new DiffusionArgumentException($"Guidance must be a finite weight ≥ 0, got {r.Guidance}.");
        if (r.Guidance != 1 && Model.NumClasses == 0)
            throw new DiffusionArgumentException($"Guidance {r.Guidance}: model '{Model.Source}' is not class-conditional, so classifier-free guidance does not apply; leave Guidance at 1.");
        if (r.Guidance != 1 && r.ClassLabels.Length == 0)
            throw new DiffusionArgumentException($"Guidance {r.Guidance} needs a class to guide towards; give ClassLabels.");
        if (Model.NumClasses > 0 && !Model.HasNullClass)
        {
            if (r.Guidance != 1)
                throw new DiffusionArgumentException($"Guidance {r.Guidance}: model '{Model.Source}' has no null label (its class embedding holds only classes 0…{Model.NumClasses - 1}), so classifier-free guidance does not apply; leave Guidance at 1.");
            if (r.ClassLabels.Length == 0)
                throw new DiffusionArgumentException($"ClassLabels: model '{Model.Source}' has no null label for unconditional sampling; give a class 0…{Model.NumClasses - 1} (one, or one per image).");
        }
        if (Model.FixedBatch is int fixedBatch)
        {
            // The network batch is the images per call, doubled by guidance; a fixed-batch graph takes only that size.
            bool guided = r.Guidance != 1;
            if (guided && fixedBatch % 2 != 0)
                throw new DiffusionArgumentException($"Model '{Model.Source}' takes a fixed batch of {fixedBatch}; classifier-free guidance doubles the batch, so it needs an even one. Use Guidance 1, or export the model with a dynamic batch.");
            int perCall = guided ? fixedBatch / 2 : fixedBatch;
            if (r.BatchSize != perCall || r.Count % perCall != 0)
                throw new DiffusionArgumentException($"Model '{Model.Source}' takes a fixed batch of {fixedBatch}: use BatchSize {perCall}{(guided ? " (guidance doubles it)" : "")} and a Count that is a multiple of {perCall}.");
        }
        if (r.ClassLabels.Length > 0)
        {
            if (Model.NumClasses == 0) throw new DiffusionArgumentException($"ClassLabels: model '{Model.Source}' is not class-conditional.");
            if (r.ClassLabels.Length != 1 && r.ClassLabels.Length != r.Count)
                throw new DiffusionArgumentException($"{r.ClassLabels.Length} class labels were given for {r.Count} images; give one, or one per image.");
            foreach (var label in r.ClassLabels)
                if (label < 0 || label >= Model.NumClasses) throw new DiffusionArgumentException($"ClassLabels {label}: model '{Model.Source}' has classes 0…{Model.NumClasses - 1}.");
        }
        if (r.Options.Resampling != 1)
        {
            if (r.Options.Resampling < 1) throw new DiffusionArgumentException($"Resampling must be at least 1, got {r.Options.Resampling}.");
            if (!sampler.Knobs.HasFlag(SamplerKnobs.Resampling))
                throw new DiffusionArgumentException($"Resampling (RePaint resampling) works with {string.Join(", ", SamplerRegistry.All.Where(e => e.Create().Knobs.HasFlag(SamplerKnobs.Resampling)).Select(e => e.Name))}, not {sampler.Name}.");
            if (r.Mask is null) throw new DiffusionArgumentException("Resampling (RePaint resampling) applies to inpainting; give KnownImages and Mask.");
        }
        if (r.InitialImages is { } inputs)
        {
            if (inputs.Length != r.Count * Model.ImageSize)
                throw new DiffusionArgumentException($"The input images hold {inputs.Length} values but {r.Count} images of [{Model.Channels},{Model.Height},{Model.Width}] need {r.Count * Model.ImageSize}.");
            if (!(r.Strength > 0 && r.Strength <= 1)) throw new DiffusionArgumentException($"Strength must lie in (0, 1], got {r.Strength}.");
        }
        if (r.InitialNoise is { } init && init.Length != r.Count * Model.ImageSize)
            throw new DiffusionArgumentException($"The initial noise holds {init.Length} values but {r.Count} images of [{Model.Channels},{Model.Height},{Model.Width}] need {r.Count * Model.ImageSize}.");
    }

    private void CheckFinite(float[] x, int start)
    {
        int bad = x.AsSpan().IndexOfAnyExceptInRange(float.MinValue, float.MaxValue);
        if (bad >= 0)
            throw new DiffusionException($"Sampling produced {x[bad]} in image {start + bad / Model.ImageSize}; nothing was written. Try more steps or another sampler.");
    }
}
