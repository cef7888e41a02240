using System.Numerics.Tensors;
using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// The one model view every sampler is written against. For a batch of x at noise levels (one per image) it runs the
/// network once, with the generation's conditioning bound beside x and t (opaque to the samplers) — twice the batch
/// with classifier-free guidance, ε̂ = ε̂_∅ + w(ε̂_c − ε̂_∅) — and, whatever the
/// prediction type, yields ε̂ and x̂₀ (x = αx̂₀ + σε̂; v̂ = αε̂ − σx̂₀; score = −ε̂/σ), with clip_sample and dynamic
/// thresholding applied to x̂₀. Also offers Karras' σ-space view D(x̃, σ) = x̂₀ with x̃ = x/α.
/// </summary>
public sealed class Denoiser : IDisposable
{
    private readonly DiffusionModel _model;
    private readonly ModelBinding _binding;
    private readonly CancellationToken _cancellation;
    private readonly Conditions _conditions;
    private readonly float _guidance;
    private readonly bool _guided;
    // ε̂ after guidance (empty without guidance: the network's output is used as it is)
    private readonly float[] _guidedOutput;
    private readonly float[] _epsScratch;
    private readonly float[] _thresholdScratch;
    private readonly NoiseLevel[] _uniform;
    private readonly double[] _timesteps;
    private readonly PredictionType _prediction;
    // a learned variance: the network's prediction part of each image, compacted, and the conditional v
    private readonly float[] _predictionPart, _variance;

    /// <summary>Images per call.</summary>
    public int BatchSize { get; }
    /// <summary>Values per image, C·H·W.</summary>
    public int ImageSize { get; }
    /// <summary>The model's noise schedule.</summary>
    public NoiseSchedule Schedule => _model.Schedule;
    /// <summary>
    /// Whether ε̂ is re-derived from x̂₀ after clip_sample / thresholding (true: the pair stays consistent with x), or
    /// stays what the network said (diffusers' DDIMScheduler.step without use_clipped_model_output).
    /// </summary>
    public bool EpsilonFromClippedSample { get; set; } = true;

    /// <summary>The model's diffusion config (prediction type, variance type, clipping…).</summary>
    public DiffusionConfig Config => _model.Config;
    /// <summary>Network evaluations so far (one per call, whatever the guidance).</summary>
    public long Evaluations => _binding.Runs;
    /// <summary>Time spent inside ONNX Runtime, in Stopwatch ticks.</summary>
    public long ModelTicks => _binding.RunTicks;
    /// <summary>
    /// Whether the network's inputs and output are device twins copied around each run (CUDA graphs; tests).
    /// </summary>
    internal bool StagedBuffers => _binding.Staged;

    /// <summary>
    /// A view over <paramref name="model"/> for batches of <paramref name="batchSize"/> images of
    /// <paramref name="shape"/> (default: the model's), conditioned on <paramref name="conditions"/> (default: none),
    /// with images 0… of the conditioning bound until <see cref="SetImages"/> moves on.
    /// </summary>
    public Denoiser(DiffusionModel model, int batchSize, Conditions? conditions = null, ImageShape? shape = null,
        CancellationToken cancellation = default)
    {
        _model = model;
        _cancellation = cancellation;
        _conditions = conditions ?? Conditions.None;
        var entryShapes = CheckConditions(model, _conditions, images: null);
        BatchSize = batchSize;
        Shape = shape ?? model.Shape;
        ImageSize = Shape.Size;
        _guidance = _conditions.Guidance;
        _guided = _conditions.Guided;
        CheckConcatenated(model, _conditions, Shape, images: null);
        _binding = new ModelBinding(model, _guided ? 2 * batchSize : batchSize, Shape, entryShapes, cancellation);
        _guidedOutput = _guided ? new float[batchSize * ImageSize] : [];
        _epsScratch = new float[batchSize * ImageSize];
        _thresholdScratch = model.Config.Thresholding ? new float[ImageSize] : [];
        _uniform = new NoiseLevel[batchSize];
        _timesteps = new double[_binding.Batch];
        _prediction = model.Config.Prediction;
        bool learned = model.Config.LearnsVariance;
        _predictionPart = learned ? new float[_binding.Batch * ImageSize] : [];
        _variance = learned ? new float[batchSize * ImageSize] : [];
        SetImages(0);
    }

    /// <summary>The image shape [C,H,W] the network is run at.</summary>
    public ImageShape Shape { get; }

    /// <summary>Whether the network also outputs v, a learned variance (variance_type learned_range).</summary>
    public bool LearnsVariance => _variance.Length > 0;

    /// <summary>
    /// v of the last call, per value of each image [BatchSize, C, H, W] (under guidance the conditional side's, as
    /// diffusers takes it): the reverse kernel's variance is Σ = exp(f log β + (1 − f) log β̃) with f = (v + 1)/2.
    /// Empty unless <see cref="LearnsVariance"/>.
    /// </summary>
    public ReadOnlySpan<float> VarianceValues => _variance;

    /// <summary>
    /// Binds the conditioning of images <paramref name="firstImage"/>… of the generation (a conditioning tensor's entry
    /// per image, or its one shared entry); guided calls bind the unconditional side in the batch's second half.
    /// </summary>
    public void SetImages(long firstImage)
    {
        var inputs = _model.ConditioningInputs;
        for (int k = 0; k < inputs.Count; k++)
        {
            var c = _conditions.Conditional[inputs[k].Name]!;
            var u = _guided ? _conditions.Unconditional![inputs[k].Name]! : null;
            for (int i = 0; i < BatchSize; i++)
            {
                _binding.SetConditioning(k, i, c, Entry(c, firstImage + i, inputs[k].Name));
                if (u is not null) _binding.SetConditioning(k, BatchSize + i, u, Entry(u, firstImage + i, inputs[k].Name));
            }
        }
        if (_conditions.Concatenated is { } extra)
        {
            int size = extra.EntrySize;
            for (int i = 0; i < BatchSize; i++)
            {
                var values = extra.Floats(Entry(extra, firstImage + i, nameof(Conditions.Concatenated)));
                values.CopyTo(_binding.Concatenated.Slice(i * size, size));
                if (_guided) values.CopyTo(_binding.Concatenated.Slice((BatchSize + i) * size, size));
            }
        }
    }

    /// <summary>
    /// Checks <see cref="Conditions.Concatenated"/> against the model's <see cref="DiffusionModel.ConcatChannels"/>
    /// at image shape <paramref name="shape"/>: floats [E, H, W], one entry or one per image (when
    /// <paramref name="images"/> is given); none for a model without such channels.
    /// </summary>
    public static void CheckConcatenated(DiffusionModel model, Conditions conditions, ImageShape shape, long? images)
    {
        var extra = conditions.Concatenated;
        int e = model.ConcatChannels;
        if (e == 0 && extra is null) return;
        if (e == 0)
            throw new DiffusionArgumentException(nameof(Conditions.Concatenated), $"model '{model.Source}' reads " +
                "no channels after the image's; give none.");
        int[] expected = [e, shape.Height, shape.Width];
        if (extra is null)
            throw new DiffusionArgumentException(nameof(Conditions.Concatenated), $"model '{model.Source}' reads " +
                $"{e} channels after the image's {shape.Channels} (e.g. an inpainting UNet's mask and masked-image " +
                    "latents); the request gives none.");
        if (extra.IsInteger || !extra.EntryShape.SequenceEqual(expected))
            throw new DiffusionArgumentException(nameof(Conditions.Concatenated), $"model '{model.Source}' reads " +
                $"float [{string.Join(",", expected)}] after the image's channels; given {extra}.");
        if (images is long n && extra.Entries != 1 && extra.Entries != n)
            throw new DiffusionArgumentException(nameof(Conditions.Concatenated), $"{extra.Entries} entries for " +
                $"{n} images; give one, or one per image.");
    }

    private static int Entry(ConditioningTensor t, long image, string input) => t.Entries == 1 || image < t.Entries
        ? t.EntryOf(image)
        : throw new DiffusionArgumentException(input, $"the conditioning holds {t.Entries} entries; image {image} has none.");

    /// <summary>
    /// Checks <paramref name="conditions"/> against <paramref name="model"/>'s conditioning inputs: one value for each,
    /// on both sides of guidance, floats for float inputs and integers for integer ones, shapes the graph accepts, one
    /// entry or one per image (when <paramref name="images"/> is given); and no value for an input the model lacks.
    /// Returns each input's entry shape, in the order of <see cref="DiffusionModel.ConditioningInputs"/>.
    /// </summary>
    public static int[][] CheckConditions(DiffusionModel model, Conditions conditions, long? images)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(conditions);
        var inputs = model.ConditioningInputs;
        if (conditions.Guided && !(conditions.Guidance >= 0 && float.IsFinite(conditions.Guidance)))
            throw new DiffusionArgumentException(nameof(Conditions.Guidance),
                $"expected a finite non-negative weight, got {conditions.Guidance}.");
        if (conditions.Guided && inputs.Count == 0)
            throw new DiffusionArgumentException(nameof(Conditions.Guidance), $"{conditions.Guidance}: model " +
                $"'{model.Source}' takes no conditioning, so classifier-free guidance does not apply; leave the " +
                    "weight at 1.");
        if (conditions.Guided && conditions.Unconditional is null)
            throw new DiffusionArgumentException(nameof(Conditions.Unconditional),
                $"guidance at weight {conditions.Guidance} needs an unconditional side to contrast with.");
        var sides = conditions.Guided ? new[] { conditions.Conditional, conditions.Unconditional! }
            : [conditions.Conditional];
        foreach (var side in sides)
            foreach (var name in side.Tensors.Keys)
                if (!inputs.Any(i => i.Name == name))
                    throw new DiffusionArgumentException(name, $"model '{model.Source}' has no input '{name}' " +
                        $"(its conditioning inputs: {(inputs.Count == 0 ? "none" : string.Join(", ", inputs.Select(i => i.Name)))}).");
        var shapes = new int[inputs.Count][];
        for (int k = 0; k < inputs.Count; k++)
        {
            var input = inputs[k];
            foreach (var side in sides)
            {
                var what = side == conditions.Conditional ? "conditioning" : "unconditional conditioning";
                var value = side[input.Name] ?? throw new DiffusionArgumentException(input.Name,
                    $"model '{model.Source}' takes '{input.Name}' ({input.Description}), and the {what} gives no " +
                        "value for it.");
                if (value.IsInteger != input.IsInteger)
                    throw new DiffusionArgumentException(input.Name, $"model '{model.Source}' takes " +
                        $"{input.Description}; the {what} gives {(value.IsInteger ? "integers" : "floats")}.");
                var dims = input.EntryDimensions;
                bool fits = value.EntryShape.Length == dims.Length
                    && value.EntryShape.Select((d, i) => dims[i] <= 0 || dims[i] == d).All(b => b);
                if (!fits)
                    throw new DiffusionArgumentException(input.Name, $"model '{model.Source}' takes " +
                        $"{input.Description}; the {what} gives {value} (entries first).");
                if (shapes[k] is { } first && !first.SequenceEqual(value.EntryShape))
                    throw new DiffusionArgumentException(input.Name, $"the conditional and unconditional values " +
                        $"differ in shape: [{string.Join(",", first)}] and [{string.Join(",", value.EntryShape)}].");
                shapes[k] = value.EntryShape;
                if (images is long n && value.Entries != 1 && value.Entries != n)
                    throw new DiffusionArgumentException(input.Name, $"the {what} holds {value.Entries} entries for " +
                        $"{n} images; give one, or one per image.");
            }
        }
        return shapes;
    }

    /// <summary>ε̂ and x̂₀ for x (VP space, x = αx₀ + σε) at one noise level shared by the batch.</summary>
    public void Predict(ReadOnlySpan<float> x, NoiseLevel level, Span<float> eps, Span<float> x0) =>
        Predict(x, Uniform(level), eps, x0);

    /// <summary>ε̂ and x̂₀ for x (VP space) at one noise level per image.</summary>
    public void Predict(ReadOnlySpan<float> x, ReadOnlySpan<NoiseLevel> levels, Span<float> eps, Span<float> x0)
    {
        x.CopyTo(_binding.Sample);
        Evaluate(levels, eps, x0);
    }

    /// <summary>Karras' denoiser D(x̃, σ) = x̂₀ for x̃ = x/α at one σ (level) shared by the batch.</summary>
    public void Denoise(ReadOnlySpan<float> xTilde, NoiseLevel level, Span<float> denoised) =>
        Denoise(xTilde, Uniform(level), denoised);

    /// <summary>Karras' denoiser D(x̃, σ) = x̂₀ for x̃ = x/α at one level per image.</summary>
    public void Denoise(ReadOnlySpan<float> xTilde, ReadOnlySpan<NoiseLevel> levels, Span<float> denoised)
    {
        for (int i = 0; i < BatchSize; i++)
            TensorPrimitives.Multiply(Image(xTilde, i), (float)levels[i].Alpha, Image(_binding.Sample, i));
        Evaluate(levels, _epsScratch, denoised);
    }

    private ReadOnlySpan<NoiseLevel> Uniform(NoiseLevel level)
    {
        _uniform.AsSpan().Fill(level);
        return _uniform;
    }

    private void Evaluate(ReadOnlySpan<NoiseLevel> levels, Span<float> eps, Span<float> x0)
    {
        int n = BatchSize * ImageSize;
        var sample = _binding.Sample[..n];
        for (int i = 0; i < BatchSize; i++)
        {
            if (levels[i].IsClean)
                throw new InvalidOperationException("The network is never evaluated at the clean level σ = 0.");
            _timesteps[i] = levels[i].Timestep;
        }
        if (_guided)
        {
            sample.CopyTo(_binding.Sample[n..]);
            _timesteps.AsSpan(0, BatchSize).CopyTo(_timesteps.AsSpan(BatchSize));
        }
        _binding.SetTimesteps(_timesteps);
        _binding.Run(_cancellation);

        // [prediction | v] per image with a learned variance: the predictions side by side, v of the conditional side
        Span<float> raw = _binding.Output;
        if (LearnsVariance)
        {
            for (int j = 0; j < _binding.Batch; j++)
            {
                raw.Slice(2 * j * ImageSize, ImageSize).CopyTo(_predictionPart.AsSpan(j * ImageSize));
                if (j < BatchSize)
                    raw.Slice((2 * j + 1) * ImageSize, ImageSize).CopyTo(_variance.AsSpan(j * ImageSize));
            }
            raw = _predictionPart;
        }
        Span<float> output = _guided ? _guidedOutput : raw;
        if (_guided)
        {
            // ε̂ = ε̂_∅ + w·(ε̂_c − ε̂_∅): the first half of the network batch is conditional, the second
            // unconditional.
            var cond = raw[..n];
            var uncond = raw.Slice(n, n);
            TensorPrimitives.Subtract(cond, uncond, output);
            TensorPrimitives.MultiplyAdd((ReadOnlySpan<float>)output, _guidance, uncond, output);
        }
        CheckOutputFinite(raw, output, levels);

        for (int i = 0; i < BatchSize; i++)
        {
            float a = (float)levels[i].Alpha, s = (float)levels[i].SigmaVp;
            var xi = Image(sample, i);
            var oi = Image(output, i);
            var ei = Image(eps, i);
            var x0i = Image(x0, i);
            switch (_prediction)
            {
                case PredictionType.Epsilon: // x̂₀ = (x − σε̂)/α
                    oi.CopyTo(ei);
                    TensorPrimitives.Multiply(xi, 1 / a, x0i);
                    TensorPrimitives.MultiplyAdd(ei, -s / a, x0i, x0i);
                    break;
                case PredictionType.Sample: // ε̂ = (x − αx̂₀)/σ
                    oi.CopyTo(x0i);
                    EpsFromX0(xi, x0i, ei, a, s);
                    break;
                case PredictionType.VPrediction: // x̂₀ = αx − σv̂, ε̂ = σx + αv̂
                    var (toSample, toNoise) = PredictionTypes.FromVelocity(a, s);
                    Vec.Axpby(x0i, toSample.OnX, xi, toSample.OnV, oi);
                    Vec.Axpby(ei, toNoise.OnX, xi, toNoise.OnV, oi);
                    break;
            }
            if (_model.Config.ClipSample || _model.Config.Thresholding)
            {
                if (_model.Config.Thresholding) DynamicThreshold(x0i);
                else Clamp(x0i, (float)_model.Config.ClipSampleRange);
                if (EpsilonFromClippedSample) EpsFromX0(xi, x0i, ei, a, s);
            }
        }
    }

    private static void EpsFromX0(ReadOnlySpan<float> x, ReadOnlySpan<float> x0, Span<float> eps, float a, float s)
    {
        TensorPrimitives.Multiply(x0, -a / s, eps);
        TensorPrimitives.MultiplyAdd(x, 1 / s, eps, eps);
    }

    /// <summary>
    /// Saharia et al. 2022: s = max(1, min(quantile(|x̂₀|, ratio), sample_max_value)); x̂₀ ← clamp(x̂₀, −s, s)/s.
    /// </summary>
    private void DynamicThreshold(Span<float> x0)
    {
        var abs = _thresholdScratch.AsSpan();
        TensorPrimitives.Abs(x0, abs);
        abs.Sort();
        double q = _model.Config.DynamicThresholdingRatio * (abs.Length - 1);
        int lo = (int)Math.Floor(q);
        double quantile = abs[lo] + (q - lo) * (abs[Math.Min(lo + 1, abs.Length - 1)] - abs[lo]);
        float s = (float)Math.Clamp(quantile, 1, Math.Max(1, _model.Config.SampleMaxValue));
        Clamp(x0, s);
        TensorPrimitives.Multiply(x0, 1 / s, x0);
    }

    private static void Clamp(Span<float> x, float bound)
    {
        TensorPrimitives.Min(x, bound, x);
        TensorPrimitives.Max(x, -bound, x);
    }

    /// <summary>The index of the first non-finite value of <paramref name="values"/>, or −1.</summary>
    private static int FirstNonFinite(ReadOnlySpan<float> values) => float.IsFinite(TensorPrimitives.Sum(values))
        ? -1 // the fast path
        : values.IndexOfAnyExceptInRange(float.MinValue, float.MaxValue);

    /// <summary>
    /// The network's <paramref name="raw"/> output must be finite, and so must the guided combination
    /// <paramref name="output"/> made of it. A non-finite output is blamed on the model only when its input x_t (still
    /// in the bound buffer) was finite; otherwise the sampler's steps diverged. (One pass per call on the hot path; the
    /// input is read only on failure.)
    /// </summary>
    private void CheckOutputFinite(ReadOnlySpan<float> raw, ReadOnlySpan<float> output,
        ReadOnlySpan<NoiseLevel> levels)
    {
        int bad = FirstNonFinite(raw);
        if (bad >= 0)
        {
            var sample = _binding.Sample[..raw.Length];
            if (FirstNonFinite(sample) is var input and >= 0)
            {
                int at = input / ImageSize % BatchSize;
                throw new DiffusionException($"Sampling diverged: x_t held {sample[input]} (image {at} of the batch, "
                    + $"timestep {levels[at].Timestep:0.###}) when the network was called, so the sampler's steps "
                    + "left the finite range. Nothing was written; try more steps, another sampler or a lower guidance "
                    + "weight.");
            }
            int image = bad / ImageSize % BatchSize;
            throw new DiffusionException(
                $"Model '{_model.Source}' returned {raw[bad]} (image {image} of the batch, value {bad % ImageSize}, " +
                    $"timestep {levels[image].Timestep:0.###}) from finite inputs. The sampling was stopped rather " +
                "than writing a broken image; check the model file.");
        }
        if (FirstNonFinite(_variance) is var v and >= 0)
            throw new DiffusionException($"Model '{_model.Source}' returned {_variance[v]} as its variance (v of image " +
                $"{v / ImageSize} of the batch, timestep {levels[v / ImageSize].Timestep:0.###}); the sampling was " +
                "stopped.");
        if (FirstNonFinite(output) is var guided and >= 0)
            throw new DiffusionException($"Classifier-free guidance at weight {_guidance} overflowed to " +
                $"{output[guided]} (image {guided / ImageSize} of the batch); use a lower weight.");
    }

    private ReadOnlySpan<float> Image(ReadOnlySpan<float> batch, int i) => batch.Slice(i * ImageSize, ImageSize);
    private Span<float> Image(Span<float> batch, int i) => batch.Slice(i * ImageSize, ImageSize);

    /// <inheritdoc />
    public void Dispose() => _binding.Dispose();
}
