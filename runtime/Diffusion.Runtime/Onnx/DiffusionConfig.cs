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
    /// <summary>DDPM posterior variance: fixed_small or fixed_large.</summary>
    public string VarianceType { get; init; } = "fixed_small";
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

    /// <summary>The keys <see cref="ToJson"/> writes (or leaves out) for this config's own fields.</summary>
    private static readonly HashSet<string> OwnKeys =
    [
        "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type", "clip_sample",
            "clip_sample_range",
        "thresholding", "dynamic_thresholding_ratio", "sample_max_value", "rescale_betas_zero_snr", "timestep_spacing",
        "use_karras_sigmas", "steps_offset", "variance_type", "num_classes", "sample_size", "in_channels", "null_class",
            "class_names",
    ];

    private static readonly HashSet<string> OwnKeysButVariance = [.. OwnKeys.Where(k => k != "variance_type")];

    /// <summary>
    /// Serializes with diffusers' key names, the scheduler's (<c>_class_name</c> and its settings) included.
    /// </summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["num_train_timesteps"] = NumTrainTimesteps,
            ["beta_start"] = BetaStart,
            ["beta_end"] = BetaEnd,
            ["beta_schedule"] = BetaSchedule,
            ["prediction_type"] = PredictionType,
            ["clip_sample"] = ClipSample,
            ["clip_sample_range"] = ClipSampleRange,
            ["thresholding"] = Thresholding,
            ["dynamic_thresholding_ratio"] = DynamicThresholdingRatio,
            ["sample_max_value"] = SampleMaxValue,
            ["rescale_betas_zero_snr"] = RescaleBetasZeroSnr,
            ["timestep_spacing"] = TimestepSpacing,
            ["use_karras_sigmas"] = UseKarrasSigmas,
            ["steps_offset"] = StepsOffset,
            ["variance_type"] = VarianceType,
            ["num_classes"] = NumClasses,
        };
        // variance_type is DDPM's posterior variance; other diffusers schedulers read the key otherwise (DPM-Solver: a
        // learned variance, refused), so with one of those the key is left as its own file had it.
        bool schedulerOwnsVariance = Scheduler is { Family: not Diffusers.DiffusersFamily.Ddpm };
        if (schedulerOwnsVariance) o.Remove("variance_type");
        if (SampleSize is not null) o["sample_size"] = new JsonArray(SampleSize.Select(v => (JsonNode)v).ToArray());
        if (InChannels is not null) o["in_channels"] = InChannels;
        if (!NullClass) o["null_class"] = false;
        if (ClassNames is not null) o["class_names"] = new JsonArray(ClassNames.Select(v => (JsonNode)v!).ToArray());
        Scheduler?.WriteTo(o, schedulerOwnsVariance ? OwnKeysButVariance : OwnKeys);
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }

    /// <summary>
    /// Parses and validates a config; <paramref name="source"/> names where it came from in error messages.
    /// </summary>
    public static DiffusionConfig Parse(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(PythonJson.Normalize(json)) as JsonObject
            ?? throw new DiffusionException($"{source}: expected a JSON object."); }
        catch (JsonException e) { throw new DiffusionException($"{source}: not valid JSON ({e.Message}).", e); }

        var c = new DiffusionConfig();
        T Get<T>(string key, T fallback)
        {
            if (!o.TryGetPropertyValue(key, out var node) || node is null) return fallback;
            try { return node.GetValue<T>(); }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            { throw new DiffusionException($"{source}: '{key}' should be a {typeof(T).Name}, " +
                $"found {node.ToJsonString()}.", e); }
        }
        c = c with
        {
            NumTrainTimesteps = Get("num_train_timesteps", c.NumTrainTimesteps),
            BetaStart = Get("beta_start", c.BetaStart),
            BetaEnd = Get("beta_end", c.BetaEnd),
            BetaSchedule = Get("beta_schedule", c.BetaSchedule),
            PredictionType = Get("prediction_type", c.PredictionType),
            ClipSample = Get("clip_sample", c.ClipSample),
            ClipSampleRange = Get("clip_sample_range", c.ClipSampleRange),
            Thresholding = Get("thresholding", c.Thresholding),
            DynamicThresholdingRatio = Get("dynamic_thresholding_ratio", c.DynamicThresholdingRatio),
            SampleMaxValue = Get("sample_max_value", c.SampleMaxValue),
            RescaleBetasZeroSnr = Get("rescale_betas_zero_snr", c.RescaleBetasZeroSnr),
            TimestepSpacing = Get("timestep_spacing", c.TimestepSpacing),
            UseKarrasSigmas = Get("use_karras_sigmas", c.UseKarrasSigmas),
            StepsOffset = Get("steps_offset", c.StepsOffset),
            VarianceType = Get("variance_type", c.VarianceType),
            InChannels = o["in_channels"] is null ? null : Get("in_channels", 0),
            NumClasses = Get("num_classes", 0),
            NullClass = Get("null_class", true),
        };
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
        if (o["sample_size"] is JsonNode size)
        {
            c = c with
            {
                SampleSize = size switch
                {
                    JsonArray a when a.Count == 2 => [Get2(a, 0), Get2(a, 1)],
                    JsonValue v when v.TryGetValue<int>(out var s) => [s, s],
                    _ => throw new DiffusionException($"{source}: 'sample_size' should be an integer or [height, " +
                        $"width], found {size.ToJsonString()}."),
                },
            };
        }
        if (o["class_names"] is JsonArray names)
            c = c with
            {
                ClassNames = names.Select(n => n is JsonValue v && v.TryGetValue<string>(out var name) ? name
                    : throw new DiffusionException($"{source}: 'class_names' should hold strings, " +
                        $"found {n?.ToJsonString() ?? "null"}.")).ToArray(),
            };
        c.Validate(source);
        return c;

        int Get2(JsonArray a, int i) => a[i] is JsonValue v && v.TryGetValue<int>(out var x)
            ? x : throw new DiffusionException($"{source}: 'sample_size' entries should be integers, " +
                $"found {a.ToJsonString()}.");
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
            throw new DiffusionException($"{source}: beta_start and beta_end must lie in (0, 1), found {BetaStart} " +
                $"and {BetaEnd}.");
        Wrap(() => Schedules.BetaSchedule.Parse(BetaSchedule));
        if (BetaStart > BetaEnd
            && Schedules.BetaSchedule.Parse(BetaSchedule) != Schedules.BetaScheduleKind.SquaredCosCapV2)
            throw new DiffusionException($"{source}: beta_start ({BetaStart}) is above beta_end ({BetaEnd}); noise " +
                $"must grow with t. Swap them.");
        Wrap(() => PredictionTypes.Parse(PredictionType));
        Wrap(() => TimestepSpacings.Parse(TimestepSpacing));
        if (VarianceType is not ("fixed_small" or "fixed_large"))
            throw new DiffusionException($"{source}: variance_type '{VarianceType}' is not supported; expected " +
                $"fixed_small or fixed_large.");
        if (SampleSize is { } s && (s.Length != 2 || s[0] is <= 0 or > MaxSide || s[1] is <= 0 or > MaxSide))
            throw new DiffusionException($"{source}: sample_size must be two sides in 1…{MaxSide}, found " +
                $"[{string.Join(",", s)}].");
        if (InChannels is <= 0 or > 4096)
            throw new DiffusionException($"{source}: in_channels must lie in 1…4096, found {InChannels}.");
        if (SampleSize is { } size && (long)size[0] * size[1] * (InChannels ?? 1) > MaxImageValues)
            throw new DiffusionException($"{source}: sample_size {size[0]}×{size[1]} with {InChannels ?? 1} channels " +
                $"is {(long)size[0] * size[1] * (InChannels ?? 1):N0} values per image; at most {MaxImageValues:N0}.");
        if (NumClasses < 0) throw new DiffusionException($"{source}: num_classes must be ≥ 0, found {NumClasses}.");
        if (ClassNames is not null && ClassNames.Length != NumClasses)
            throw new DiffusionException($"{source}: class_names has {ClassNames.Length} names but num_classes " +
                $"is {NumClasses}.");
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
