using System.Text.Json.Nodes;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Diffusers;

/// <summary>The diffusers scheduler families whose grids and steps the runtime reproduces.</summary>
public enum DiffusersFamily
{
    /// <summary>DDIMScheduler.</summary>
    Ddim,
    /// <summary>DDPMScheduler.</summary>
    Ddpm,
    /// <summary>EulerDiscreteScheduler.</summary>
    Euler,
    /// <summary>EulerAncestralDiscreteScheduler.</summary>
    EulerAncestral,
    /// <summary>HeunDiscreteScheduler.</summary>
    Heun,
    /// <summary>DPMSolverMultistepScheduler.</summary>
    DpmSolverMultistep,
    /// <summary>UniPCMultistepScheduler.</summary>
    UniPCMultistep,
    /// <summary>LMSDiscreteScheduler.</summary>
    Lms,
    /// <summary>PNDMScheduler.</summary>
    Pndm,
}

/// <summary>
/// What a diffusers <c>scheduler_config.json</c> says about sampling: its <c>_class_name</c> and the settings that
/// decide the grid and the step. Keys a file leaves out take that class's diffusers default (e.g. an old Stable
/// Diffusion config without <c>timestep_spacing</c> is "leading" for DDIM but "linspace" for Euler).
/// </summary>
public sealed record DiffusersScheduler
{
    /// <summary>The <c>_class_name</c>, e.g. DPMSolverMultistepScheduler.</summary>
    public required string ClassName { get; init; }
    /// <summary>timestep_spacing.</summary>
    public TimestepSpacing Spacing { get; init; }
    /// <summary>steps_offset (added to leading timesteps).</summary>
    public int StepsOffset { get; init; }
    /// <summary>DDIM's and PNDM's set_alpha_to_one: the last step goes to ᾱ = 1 (true) or to ᾱ_0 (false).</summary>
    public bool SetAlphaToOne { get; init; } = true;
    /// <summary>
    /// PNDM's skip_prk_steps: pseudo linear multistep from the first step (Stable Diffusion's PLMS) instead of 3 pseudo
    /// Runge–Kutta steps first.
    /// </summary>
    public bool SkipPrkSteps { get; init; }
    /// <summary>use_karras_sigmas.</summary>
    public bool UseKarrasSigmas { get; init; }
    /// <summary>DPM-Solver's and UniPC's solver_order.</summary>
    public int SolverOrder { get; init; } = 2;
    /// <summary>
    /// DPM-Solver's algorithm_type (dpmsolver++, sde-dpmsolver++, …) or UniPC's solver_type (bh2, bh1).
    /// </summary>
    public string Algorithm { get; init; } = "dpmsolver++";
    /// <summary>DPM-Solver's solver_type: midpoint or heun (the form of its second-order step).</summary>
    public string SolverType { get; init; } = "midpoint";
    /// <summary>lower_order_final.</summary>
    public bool LowerOrderFinal { get; init; } = true;
    /// <summary>euler_at_final.</summary>
    public bool EulerAtFinal { get; init; }
    /// <summary>
    /// final_sigmas_type: "zero" (the last step denoises) or "sigma_min" (it ends at the schedule's smallest σ, read by
    /// Euler, DPMSolverMultistep and UniPC).
    /// </summary>
    public string FinalSigmasType { get; init; } = "zero";
    /// <summary>
    /// Whether the grid ends at σ_min = σ(t = 0) rather than at σ = 0 (final_sigmas_type "sigma_min", for the classes
    /// that read it).
    /// </summary>
    public bool EndsAtSigmaMin => FinalSigmasType == "sigma_min"
        && Family is DiffusersFamily.Euler or DiffusersFamily.DpmSolverMultistep or DiffusersFamily.UniPCMultistep;

    /// <summary>DDPM's variance_type.</summary>
    public string VarianceType { get; init; } = "fixed_small";
    /// <summary>
    /// DPM-Solver's lambda_min_clipped: timesteps whose λ lies below it are left out of the grid (−∞: none).
    /// </summary>
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;

    /// <summary>
    /// The family <see cref="ClassName"/> names, or null for a scheduler the runtime does not reproduce.
    /// </summary>
    public DiffusersFamily? Family => ClassName switch
    {
        "DDIMScheduler" => DiffusersFamily.Ddim,
        "DDPMScheduler" => DiffusersFamily.Ddpm,
        "EulerDiscreteScheduler" => DiffusersFamily.Euler,
        "EulerAncestralDiscreteScheduler" => DiffusersFamily.EulerAncestral,
        "HeunDiscreteScheduler" => DiffusersFamily.Heun,
        "DPMSolverMultistepScheduler" => DiffusersFamily.DpmSolverMultistep,
        "UniPCMultistepScheduler" => DiffusersFamily.UniPCMultistep,
        "LMSDiscreteScheduler" => DiffusersFamily.Lms,
        "PNDMScheduler" => DiffusersFamily.Pndm,
        _ => null,
    };

    /// <summary>diffusers' default timestep_spacing of a scheduler class.</summary>
    public static TimestepSpacing DefaultSpacing(string className) =>
        className is "DDIMScheduler" or "DDPMScheduler" or "PNDMScheduler" ? TimestepSpacing.Leading
            : TimestepSpacing.Linspace;

    /// <summary>The scheduler settings of a diffusers config, or null when it has no <c>_class_name</c>.</summary>
    public static DiffusersScheduler? Parse(JsonObject o, string source)
    {
        if (o["_class_name"] is not JsonValue nameValue) return null;
        if (!nameValue.TryGetValue<string>(out var className) || className.Length == 0)
            throw new DiffusionException($"{source}: '_class_name' should be a scheduler class name, " +
                $"found {nameValue.ToJsonString()}.");
        T Get<T>(string key, T fallback)
        {
            if (!o.TryGetPropertyValue(key, out var node) || node is null) return fallback;
            Onnx.PythonJson.ThrowIfNonFinite(node, key, source); // a number is finite, but for the one key below
            try { return node.GetValue<T>(); }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            { throw new DiffusionException($"{source}: '{key}' should be a {typeof(T).Name}, " +
                $"found {node.ToJsonString()}.", e); }
        }
        var spacingName = Get<string?>("timestep_spacing", null);
        TimestepSpacing spacing;
        try { spacing = spacingName is null ? DefaultSpacing(className) : TimestepSpacings.Parse(spacingName); }
        catch (ArgumentException e) { throw new DiffusionException($"{source}: {e.Message}", e); }
        bool uniPC = className == "UniPCMultistepScheduler";
        return new DiffusersScheduler
        {
            ClassName = className,
            Spacing = spacing,
            StepsOffset = Get("steps_offset", 0),
            SetAlphaToOne = Get("set_alpha_to_one", className != "PNDMScheduler"),
            SkipPrkSteps = Get("skip_prk_steps", false),
            UseKarrasSigmas = Get("use_karras_sigmas", false),
            SolverOrder = Get("solver_order", 2),
            Algorithm = uniPC ? Get("solver_type", "bh2") : Get("algorithm_type", "dpmsolver++"),
            SolverType = uniPC ? "midpoint" : Get("solver_type", "midpoint"),
            LowerOrderFinal = Get("lower_order_final", true),
            EulerAtFinal = Get("euler_at_final", false),
            FinalSigmasType = Get("final_sigmas_type", "zero"),
            VarianceType = Get("variance_type", "fixed_small"),
            // −∞ is "no clipping", and diffusers writes it as -Infinity
            LambdaMinClipped = Onnx.PythonJson.TryNonFinite(o["lambda_min_clipped"], out var lambda, out _)
                && lambda == double.NegativeInfinity ? lambda : Get("lambda_min_clipped", double.NegativeInfinity),
            Unsupported = UnsupportedSettings(o, className),
            SourceKeys = o.DeepClone().AsObject(),
        };
    }

    /// <summary>Why the runtime cannot walk this scheduler as diffusers does, or null if it can.</summary>
    public string? Unsupported { get; init; }

    /// <summary>Every key of the config it was read from (a copy), so that writing the config back keeps what the
    /// runtime does not model — including what made it <see cref="Unsupported"/>.</summary>
    public JsonObject? SourceKeys { get; init; }

    /// <summary>Adds its settings under diffusers' key names to <paramref name="o"/>, then the other keys of
    /// <see cref="SourceKeys"/>; keys <paramref name="o"/> already holds, or <paramref name="reserved"/> names, stay as
    /// they are.</summary>
    public void WriteTo(JsonObject o, IReadOnlySet<string> reserved)
    {
        bool uniPC = ClassName == "UniPCMultistepScheduler";
        var own = new JsonObject
        {
            ["_class_name"] = ClassName,
            ["timestep_spacing"] = Spacing.ToString().ToLowerInvariant(),
            ["steps_offset"] = StepsOffset,
            ["set_alpha_to_one"] = SetAlphaToOne,
            ["skip_prk_steps"] = SkipPrkSteps,
            ["use_karras_sigmas"] = UseKarrasSigmas,
            ["solver_order"] = SolverOrder,
            [uniPC ? "solver_type" : "algorithm_type"] = Algorithm,
            ["lower_order_final"] = LowerOrderFinal,
            ["euler_at_final"] = EulerAtFinal,
            ["final_sigmas_type"] = FinalSigmasType,
        };
        if (Family == DiffusersFamily.Ddpm) own["variance_type"] = VarianceType;
        if (!uniPC) own["solver_type"] = SolverType;
        if (double.IsFinite(LambdaMinClipped)) own["lambda_min_clipped"] = LambdaMinClipped;
        foreach (var (key, value) in own)
            if (!o.ContainsKey(key)) o[key] = value?.DeepClone();
        foreach (var (key, value) in SourceKeys ?? [])
            if (!o.ContainsKey(key) && !reserved.Contains(key)) o[key] = value?.DeepClone();
    }

    private static string? UnsupportedSettings(JsonObject o, string className)
    {
        string? Text(string key) => o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        bool Flag(string key) => o[key] is JsonValue v && v.TryGetValue<bool>(out var b) && b;
        var problems = new List<string>();
        switch (className)
        {
            case "PNDMScheduler":
                if (Text("prediction_type") is { } pp && pp is not ("epsilon" or "v_prediction"))
                    problems.Add($"prediction_type '{pp}' (diffusers' PNDM takes epsilon and v_prediction)");
                break;
            case "DDPMScheduler":
                if (Text("variance_type") is { } variance
                    && variance is not ("fixed_small" or "fixed_small_log" or "fixed_large" or "learned_range"))
                    problems.Add($"variance_type '{variance}' (fixed_small, fixed_large and learned_range are)");
                break;
            case "DDIMScheduler" or "EulerDiscreteScheduler" or "EulerAncestralDiscreteScheduler"
                or "HeunDiscreteScheduler" or "LMSDiscreteScheduler":
                break;
            case "DPMSolverMultistepScheduler":
                string algorithm = Text("algorithm_type") ?? "dpmsolver++";
                int order = o["solver_order"] is JsonValue ov && ov.TryGetValue<int>(out var n) ? n : 2;
                if (algorithm is not ("dpmsolver++" or "sde-dpmsolver++" or "dpmsolver" or "sde-dpmsolver"))
                    problems.Add($"algorithm_type '{algorithm}' (dpmsolver++, sde-dpmsolver++, dpmsolver and " +
                        $"sde-dpmsolver are)");
                if (order is not (1 or 2 or 3)) problems.Add($"solver_order {order} (1, 2 and 3 are)");
                if (algorithm is "dpmsolver" or "sde-dpmsolver")
                {
                    if (order == 3) problems.Add($"{algorithm} of order 3");
                    if (Text("final_sigmas_type") is null or "zero")
                        problems.Add($"{algorithm} with final_sigmas_type 'zero' (diffusers refuses it too: noise " +
                            $"prediction cannot step to σ = 0; use sigma_min)");
                }
                if (algorithm == "sde-dpmsolver++" && (order != 2 || Text("solver_type") == "heun"))
                    problems.Add("sde-dpmsolver++ other than order 2 midpoint");
                if (Flag("use_lu_lambdas") || Flag("use_exponential_sigmas") || Flag("use_beta_sigmas"))
                    problems.Add("λ/exponential/beta σ grids");
                // learned_range: the network's v channels follow its prediction and are left unread, as diffusers
                // does
                if (o["variance_type"] is JsonValue vt && vt.TryGetValue<string>(out var learned)
                    && learned is not (null or "learned_range"))
                    problems.Add($"variance_type '{learned}'");
                if (algorithm == "sde-dpmsolver++" && Text("final_sigmas_type") is "sigma_min")
                    problems.Add("sde-dpmsolver++ with final_sigmas_type 'sigma_min'");
                break;
            case "UniPCMultistepScheduler":
                if (Text("solver_type") is { } s && s != "bh2") problems.Add($"solver_type '{s}' (bh2 is)");
                if (o["solver_order"] is JsonValue uo && uo.TryGetValue<int>(out var un) && un != 2)
                    problems.Add($"solver_order {un} (2 is)");
                if (o["predict_x0"] is JsonValue p && p.TryGetValue<bool>(out var x0) && !x0)
                    problems.Add("predict_x0 false");
                if (o["disable_corrector"] is JsonArray { Count: > 0 }) problems.Add("disable_corrector");
                if (o["lower_order_final"] is JsonValue lv && lv.TryGetValue<bool>(out var lower) && !lower
                    && Text("final_sigmas_type") is null or "zero")
                    problems.Add("lower_order_final false with final_sigmas_type 'zero' (its order-2 step to σ = 0 " +
                        "divides by zero in diffusers too)");
                break;
            default:
                return $"'{className}' is not a scheduler the runtime reproduces (DDIM, DDPM, PNDM, Euler, " +
                    $"EulerAncestral, Heun, LMS, DPMSolverMultistep, UniPCMultistep are)";
        }
        if (className is "EulerDiscreteScheduler" or "DPMSolverMultistepScheduler" or "UniPCMultistepScheduler"
            && Text("final_sigmas_type") is { } final && final is not ("zero" or "sigma_min"))
            problems.Add($"final_sigmas_type '{final}' (zero and sigma_min are)");
        if (Text("timestep_type") is "continuous") problems.Add("timestep_type 'continuous'");
        if (Text("interpolation_type") is { } it && it != "linear") problems.Add($"interpolation_type '{it}'");
        if (o["sigma_min"] is JsonValue { } smin && smin.GetValueKind() != System.Text.Json.JsonValueKind.Null)
            problems.Add("sigma_min");
        if (o["sigma_max"] is JsonValue { } smax && smax.GetValueKind() != System.Text.Json.JsonValueKind.Null)
            problems.Add("sigma_max");
        return problems.Count == 0 ? null : $"{className} with {string.Join(", ", problems)} is not supported";
    }
}
