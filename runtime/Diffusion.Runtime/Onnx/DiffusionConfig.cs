using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// What a model says about itself: the <c>diffusion.config</c> metadata JSON, written with diffusers'
/// <c>scheduler_config.json</c> key names where one exists, plus sample_size, in_channels, num_classes, class_names.
/// </summary>
public sealed record DiffusionConfig
{
    /// <summary>The ONNX metadata_props key that holds this JSON.</summary>
    public const string MetadataKey = "diffusion.config";

    /// <summary>T, the number of training timesteps.</summary>
    public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary>β at t = 0.</summary>
    public double BetaStart { get; init; } = 0.0001;
    /// <summary>β at t = T−1.</summary>
    public double BetaEnd { get; init; } = 0.02;
    /// <summary>Beta schedule name (diffusers' beta_schedule).</summary>
    public string BetaSchedule { get; init; } = "linear";
    /// <summary>What the network predicts: epsilon, v_prediction or sample.</summary>
    public string PredictionType { get; init; } = "epsilon";
    /// <summary>Clamp predicted x̂₀ to ±clip_sample_range.</summary>
    public bool ClipSample { get; init; }
    /// <summary>Bound used by clip_sample.</summary>
    public double ClipSampleRange { get; init; } = 1.0;
    /// <summary>Dynamic thresholding of x̂₀ (Saharia et al. 2022).</summary>
    public bool Thresholding { get; init; }
    /// <summary>Percentile of |x̂₀| used by dynamic thresholding.</summary>
    public double DynamicThresholdingRatio { get; init; } = 0.995;
    /// <summary>Upper bound of the dynamic threshold.</summary>
    public double SampleMaxValue { get; init; } = 1.0;
    /// <summary>Rescale the schedule to zero terminal SNR (Lin et al. 2023).</summary>
    public bool RescaleBetasZeroSnr { get; init; }
    /// <summary>Default timestep spacing for sampling.</summary>
    public string TimestepSpacing { get; init; } = "trailing";
    /// <summary>
    /// Default grid: Karras et al.'s σ grid instead of timesteps by <see cref="TimestepSpacing"/> (diffusers'
    /// use_karras_sigmas).
    /// </summary>
    public bool UseKarrasSigmas { get; init; }
    /// <summary>Offset added to leading timesteps.</summary>
    public int StepsOffset { get; init; }
    /// <summary>
    /// The reverse kernel's variance Σ_t: fixed_small (β̃_t), fixed_large (β_t), or learned_range — the network also
    /// outputs v ∈ [−1, 1] per value, C more channels after the prediction, and
    /// Σ = exp(f log β_t + (1 − f) log β̃_t) with f = (v + 1)/2 (Nichol &amp; Dhariwal 2021, diffusers' learned_range).
    /// </summary>
    /// <seealso cref="LearnsVariance"/>
    public string VarianceType { get; init; } = "fixed_small";
    /// <summary>Whether the network outputs v for a learned variance (variance_type learned_range).</summary>
    public bool LearnsVariance => VarianceType == "learned_range";
    /// <summary>Image height and width.</summary>
    public int[]? SampleSize { get; init; }
    /// <summary>Image channels.</summary>
    public int? InChannels { get; init; }
    /// <summary>
    /// Number of classes of a class-conditional model (the label value num_classes is the null label); 0 if
    /// unconditional.
    /// </summary>
    public int NumClasses { get; init; }
    /// <summary>
    /// Whether label <see cref="NumClasses"/> is a trained null label (unconditional, for guidance); diffusers'
    /// class-conditional UNets have none (<c>null_class</c>).
    /// </summary>
    public bool NullClass { get; init; } = true;
    /// <summary>Optional names of the classes, index = label.</summary>
    public string[]? ClassNames { get; init; }
    /// <summary>
    /// The diffusers scheduler the config names (<c>_class_name</c>) with its settings; null if it names none.
    /// </summary>
    public Diffusers.DiffusersScheduler? Scheduler { get; init; }

    /// <summary>The noise schedule this config describes.</summary>
    public NoiseSchedule CreateSchedule() =>
        NoiseSchedule.Create(Schedules.BetaSchedule.Parse(BetaSchedule), NumTrainTimesteps, BetaStart, BetaEnd,
            RescaleBetasZeroSnr);

    /// <summary>The parsed prediction type.</summary>
    public PredictionType Prediction => PredictionTypes.Parse(PredictionType);

    /// <summary>A scalar field under its diffusers key: how it is written and read back.</summary>
    private abstract record Field(string Key)
    {
        public abstract JsonNode Write(DiffusionConfig c);
        public abstract DiffusionConfig Read(DiffusionConfig c, JsonNode node, string source);
    }

    private sealed record Field<T>(
        string Key, Func<DiffusionConfig, T> Get, Func<DiffusionConfig, T, DiffusionConfig> Set) : Field(Key)
    {
        public override JsonNode Write(DiffusionConfig c) => Get(c) switch
        {
            int v => v,
            double v => v,
            bool v => v,
            string v => v,
            var v => throw new NotSupportedException($"{Key}: {v?.GetType().Name}"),
        };

        public override DiffusionConfig Read(DiffusionConfig c, JsonNode node, string source) =>
            Set(c, Value<T>(node, Key, source));
    }

    /// <summary>
    /// The value under <paramref name="key"/> as a <typeparamref name="T"/>, or an error naming both.
    /// </summary>
    private static T Value<T>(JsonNode node, string key, string source)
    {
        PythonJson.ThrowIfNonFinite(node, key, source);
        try { return node.GetValue<T>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new DiffusionException($"{source}: '{key}' should be a {typeof(T).Name}, "
                + $"found {node.ToJsonString()}.", e);
        }
    }

    private static Field<T> F<T>(
        string key, Func<DiffusionConfig, T> get, Func<DiffusionConfig, T, DiffusionConfig> set) => new(key, get, set);

    /// <summary>
    /// The scalar fields: the one list that <see cref="ToJson"/> writes and <see cref="Parse"/> reads.
    /// </summary>
    private static readonly Field[] Scalars =
    [
        F("num_train_timesteps", c => c.NumTrainTimesteps, (c, v) => c with { NumTrainTimesteps = v }),
        F("beta_start", c => c.BetaStart, (c, v) => c with { BetaStart = v }),
        F("beta_end", c => c.BetaEnd, (c, v) => c with { BetaEnd = v }),
        F("beta_schedule", c => c.BetaSchedule, (c, v) => c with { BetaSchedule = v }),
        F("prediction_type", c => c.PredictionType, (c, v) => c with { PredictionType = v }),
        F("clip_sample", c => c.ClipSample, (c, v) => c with { ClipSample = v }),
        F("clip_sample_range", c => c.ClipSampleRange, (c, v) => c with { ClipSampleRange = v }),
        F("thresholding", c => c.Thresholding, (c, v) => c with { Thresholding = v }),
        F("dynamic_thresholding_ratio", c => c.DynamicThresholdingRatio,
            (c, v) => c with { DynamicThresholdingRatio = v }),
        F("sample_max_value", c => c.SampleMaxValue, (c, v) => c with { SampleMaxValue = v }),
        F("rescale_betas_zero_snr", c => c.RescaleBetasZeroSnr, (c, v) => c with { RescaleBetasZeroSnr = v }),
        F("timestep_spacing", c => c.TimestepSpacing, (c, v) => c with { TimestepSpacing = v }),
        F("use_karras_sigmas", c => c.UseKarrasSigmas, (c, v) => c with { UseKarrasSigmas = v }),
        F("steps_offset", c => c.StepsOffset, (c, v) => c with { StepsOffset = v }),
        F("variance_type", c => c.VarianceType, (c, v) => c with { VarianceType = v }),
        F("num_classes", c => c.NumClasses, (c, v) => c with { NumClasses = v }),
    ];

    /// <summary>Keys of the fields that are not scalars, or are written only when not the default.</summary>
    private const string SampleSizeKey = "sample_size", InChannelsKey = "in_channels", NullClassKey = "null_class",
        ClassNamesKey = "class_names", VarianceTypeKey = "variance_type";

    /// <summary>Every key of this config's own fields: a scheduler's settings never write over them.</summary>
    private static readonly HashSet<string> OwnKeys =
        [.. Scalars.Select(f => f.Key), SampleSizeKey, InChannelsKey, NullClassKey, ClassNamesKey];

    private static readonly HashSet<string> OwnKeysButVariance = [.. OwnKeys.Where(k => k != VarianceTypeKey)];

    /// <summary>
    /// Serializes with diffusers' key names, the scheduler's (<c>_class_name</c> and its settings) included.
    /// </summary>
    public string ToJson()
    {
        var o = new JsonObject();
        foreach (var field in Scalars) o[field.Key] = field.Write(this);
        // variance_type is DDPM's posterior variance; other diffusers schedulers read the key otherwise (DPM-Solver: a
        // learned variance, refused), so with one of those the key is left as its own file had it.
        bool schedulerOwnsVariance = Scheduler is { Family: not Diffusers.DiffusersFamily.Ddpm };
        if (schedulerOwnsVariance) o.Remove(VarianceTypeKey);
        if (SampleSize is not null) o[SampleSizeKey] = new JsonArray(SampleSize.Select(v => (JsonNode)v).ToArray());
        if (InChannels is not null) o[InChannelsKey] = InChannels;
        if (!NullClass) o[NullClassKey] = false;
        if (ClassNames is not null) o[ClassNamesKey] = new JsonArray(ClassNames.Select(v => (JsonNode)v!).ToArray());
        Scheduler?.WriteTo(o, schedulerOwnsVariance ? OwnKeysButVariance : OwnKeys);
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }

    /// <summary>
    /// Parses and validates a config; <paramref name="source"/> names where it came from in error messages.
    /// </summary>
    public static DiffusionConfig Parse(string json, string source)
    {
        JsonObject o;
        try
        {
            o = JsonNode.Parse(PythonJson.Normalize(json)) as JsonObject
                ?? throw new DiffusionException($"{source}: expected a JSON object.");
        }
        catch (JsonException e) { throw new DiffusionException($"{source}: not valid JSON ({e.Message}).", e); }

        var c = new DiffusionConfig();
        foreach (var field in Scalars)
            if (o[field.Key] is { } node) c = field.Read(c, node, source);
        if (o[InChannelsKey] is { } channels) c = c with { InChannels = Value<int>(channels, InChannelsKey, source) };
        if (o[NullClassKey] is { } nullClass) c = c with { NullClass = Value<bool>(nullClass, NullClassKey, source) };
        if (Diffusers.DiffusersScheduler.Parse(o, source) is { } scheduler)
            c = c with
            {
                Scheduler = scheduler,
                // diffusers' per-class default where the file is silent (older Stable Diffusion configs are).
                TimestepSpacing = o["timestep_spacing"] is null ? scheduler.Spacing.ToString().ToLowerInvariant()
                    : c.TimestepSpacing,
                ClipSample = o["clip_sample"] is null ? scheduler.ClassName is "DDIMScheduler" or "DDPMScheduler"
                    : c.ClipSample,
            };
        if (o[SampleSizeKey] is JsonNode size)
        {
            c = c with
            {
                SampleSize = size switch
                {
                    JsonArray a when a.Count == 2 => [Get2(a, 0), Get2(a, 1)],
                    JsonValue v when v.TryGetValue<int>(out var s) => [s, s],
                    _ => throw new DiffusionException($"{source}: 'sample_size' should be an integer or [height, "
                        + $"width], found {size.ToJsonString()}."),
                },
            };
        }
        if (o[ClassNamesKey] is JsonArray names)
            c = c with
            {
                ClassNames = names.Select(n => n is JsonValue v && v.TryGetValue<string>(out var name) ? name
                    : throw new DiffusionException($"{source}: 'class_names' should hold strings, "
                        + $"found {n?.ToJsonString() ?? "null"}.")).ToArray(),
            };
        c.Validate(source);
        return c;

        int Get2(JsonArray a, int i) => a[i] is JsonValue v && v.TryGetValue<int>(out var x)
            ? x : throw new DiffusionException($"{source}: 'sample_size' entries should be integers, "
                + $"found {a.ToJsonString()}.");
    }

    /// <summary>Most training timesteps a config may declare.</summary>
    public const int MaxTrainTimesteps = 100_000;
    /// <summary>Longest image side a config may declare.</summary>
    public const int MaxSide = 16_384;
    /// <summary>Most values (C×H×W) per image: 2²⁶, a 4096² RGBA image.</summary>
    public const long MaxImageValues = 1L << 26;

    /// <summary>Checks every field, naming <paramref name="source"/> and the key at fault.</summary>
    public void Validate(string source)
    {
        if (NumTrainTimesteps is < 2 or > MaxTrainTimesteps)
            throw new DiffusionException($"{source}: num_train_timesteps must lie in 2…{MaxTrainTimesteps}, " +
                $"found {NumTrainTimesteps}.");
        if (!(BetaStart > 0 && BetaEnd > 0 && BetaStart < 1 && BetaEnd < 1))
            throw new DiffusionException($"{source}: beta_start and beta_end must lie in (0, 1), found " +
                $"{BetaStart} and {BetaEnd}.");
        Wrap(() => Schedules.BetaSchedule.Parse(BetaSchedule));
        if (BetaStart > BetaEnd
            && Schedules.BetaSchedule.Parse(BetaSchedule) != Schedules.BetaScheduleKind.SquaredCosCapV2)
            throw new DiffusionException($"{source}: beta_start ({BetaStart}) is above beta_end ({BetaEnd}); noise " +
                $"must grow with t. Swap them.");
        Wrap(() => PredictionTypes.Parse(PredictionType));
        Wrap(() => TimestepSpacings.Parse(TimestepSpacing));
        if (VarianceType is not ("fixed_small" or "fixed_large" or "learned_range"))
            throw new DiffusionException($"{source}: variance_type '{VarianceType}' is not supported; expected " +
                $"fixed_small, fixed_large or learned_range.");
        if (SampleSize is { } s && (s.Length != 2 || s[0] is <= 0 or > MaxSide || s[1] is <= 0 or > MaxSide))
            throw new DiffusionException($"{source}: sample_size must be two sides in " +
                $"1…{MaxSide}, found [{string.Join(",", s)}].");
        if (InChannels is <= 0 or > 4096)
            throw new DiffusionException($"{source}: in_channels must lie in 1…4096, found {InChannels}.");
        if (SampleSize is { } size && (long)size[0] * size[1] * (InChannels ?? 1) > MaxImageValues)
            throw new DiffusionException($"{source}: sample_size {size[0]}×{size[1]} with {InChannels ?? 1} channels " +
                $"is {(long)size[0] * size[1] * (InChannels ?? 1):N0} values per image; at most {MaxImageValues:N0}.");
        if (NumClasses < 0) throw new DiffusionException($"{source}: num_classes must be ≥ 0, found {NumClasses}.");
        if (ClassNames is not null && ClassNames.Length != NumClasses)
            throw new DiffusionException($"{source}: class_names has {ClassNames.Length} names but num_classes " +
                $"is {NumClasses}.");
        if (!(ClipSampleRange > 0 && ClipSampleRange <= 1e6))
            throw new DiffusionException($"{source}: clip_sample_range must lie in (0, 1e6], found {ClipSampleRange}.");
        if (!(SampleMaxValue > 0 && SampleMaxValue <= 1e6))
            throw new DiffusionException($"{source}: sample_max_value must lie in (0, 1e6], found {SampleMaxValue}.");
        if (StepsOffset < 0 || StepsOffset >= NumTrainTimesteps)
            throw new DiffusionException($"{source}: steps_offset must lie in 0…{NumTrainTimesteps - 1} (below " +
                $"num_train_timesteps), found {StepsOffset}.");
        if (!(DynamicThresholdingRatio > 0 && DynamicThresholdingRatio <= 1))
            throw new DiffusionException($"{source}: dynamic_thresholding_ratio must lie in (0, 1], " +
                $"found {DynamicThresholdingRatio}.");

        void Wrap(Action parse)
        {
            try { parse(); }
            catch (ArgumentException e) { throw new DiffusionException($"{source}: {e.Message}", e); }
        }
    }
}
