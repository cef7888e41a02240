namespace Diffusion.Runtime.Samplers;

/// <summary>The samplers by name, with a line each on what they implement.</summary>
public static class SamplerRegistry
{
    /// <summary>Name, one-line description and factory of every sampler.</summary>
    public static IReadOnlyList<(string Name, string Description, Func<ISampler> Create)> All { get; } =
    [
        ("ddpm", "DDPM ancestral, the variance the model's variance_type names (default β̃, fixed_small) — Ho et al. 2020", () => new Ddpm(fixedLarge: null)),
        ("ddpm-large", "DDPM ancestral, variance β (fixed_large) — Ho et al. 2020", () => new Ddpm(fixedLarge: true)),
        ("ddim", "DDIM, η = 0 deterministic … 1 ancestral — Song, Meng & Ermon 2021", () => new Ddim()),
        ("euler", "Euler on the probability-flow ODE — Karras et al. 2022", () => new Euler()),
        ("heun", "Heun (2nd order) on the probability-flow ODE, 2 NFE/step — Karras et al. 2022", () => new Heun()),
        ("euler-ancestral", "Euler ancestral (k-diffusion's Euler a), η = 1 — Karras et al. 2022 / Crowson", () => new EulerAncestral()),
        ("euler-maruyama", "Euler–Maruyama on the reverse VP SDE — Song et al. 2021", () => new EulerMaruyama()),
        ("pc", "Predictor–corrector: reverse diffusion + Langevin (snr), 2 NFE/step — Song et al. 2021", () => new PredictorCorrector()),
        ("dpm++2m", "DPM-Solver++(2M), multistep 2nd order — Lu et al. 2022", () => new DpmSolverPlusPlus2M()),
        ("dpm++2m-sde", "DPM-Solver++(2M) SDE, η = 1 — Lu et al. 2022", () => new DpmSolverPlusPlus2MSde()),
        ("dpm++3m-sde", "DPM-Solver++(3M) SDE, multistep 3rd order, η = 1 (0 = ODE) — Lu et al. 2022", () => new DpmSolverPlusPlus3MSde()),
        ("unipc", "UniPC bh2, order 2 predictor–corrector — Zhao et al. 2023", () => new UniPC()),
        ("lms", "Linear multistep (4th order, Lagrange coefficients in σ) on the probability-flow ODE — k-diffusion / Karras et al. 2022", () => new LinearMultistep()),
        ("rk45", "Adaptive Dormand–Prince RK45 on the PF-ODE (rtol/atol; chooses its own steps) — Song et al. 2021", () => new DormandPrince()),
    ];

    /// <summary>
    /// Other names users know the samplers by: k-diffusion's functions, the AUTOMATIC1111 web UI's labels and diffusers'
    /// scheduler classes (whose own settings, e.g. DPMSolverMultistep's algorithm_type, are not read from a name).
    /// Matching ignores case, spaces, '_', '-', '+' and '.'.
    /// </summary>
    public static IReadOnlyDictionary<string, string[]> Aliases { get; } = new Dictionary<string, string[]>
    {
        ["ddpm"] = ["DDPMScheduler", "ancestral"],
        ["ddim"] = ["DDIMScheduler"],
        ["euler"] = ["sample_euler", "EulerDiscreteScheduler", "k_euler"],
        ["heun"] = ["sample_heun", "HeunDiscreteScheduler", "k_heun"],
        ["euler-ancestral"] = ["euler_a", "euler a", "sample_euler_ancestral", "EulerAncestralDiscreteScheduler", "k_euler_a"],
        ["dpm++2m"] = ["dpmpp_2m", "DPM++ 2M", "sample_dpmpp_2m", "DPMSolverMultistepScheduler", "k_dpmpp_2m"],
        ["dpm++2m-sde"] = ["dpmpp_2m_sde", "DPM++ 2M SDE", "sample_dpmpp_2m_sde"],
        ["dpm++3m-sde"] = ["dpmpp_3m_sde", "DPM++ 3M SDE", "sample_dpmpp_3m_sde"],
        ["unipc"] = ["UniPCMultistepScheduler", "UniPC"],
        ["lms"] = ["sample_lms", "LMS", "LMSDiscreteScheduler", "k_lms"],
        ["euler-maruyama"] = ["em", "sde"],
        ["pc"] = ["predictor-corrector"],
        ["rk45"] = ["dopri5", "dormand-prince", "ode"],
    };

    private static string Key(string name) => new(name.Where(c => !char.IsWhiteSpace(c) && c is not ('_' or '-' or '+' or '.')).Select(char.ToLowerInvariant).ToArray());

    /// <summary>The canonical name of <paramref name="name"/> (a sampler's own name or an alias), or null.</summary>
    public static string? Resolve(string name)
    {
        var key = Key(name);
        foreach (var entry in All)
            if (Key(entry.Name) == key || (Aliases.TryGetValue(entry.Name, out var aliases) && aliases.Any(a => Key(a) == key))) return entry.Name;
        return null;
    }

    /// <summary>The sampler called <paramref name="name"/> (or one of its aliases); an unknown name lists the known ones.</summary>
    public static ISampler Create(string name)
    {
        if (Resolve(name) is { } canonical) return All.First(e => e.Name == canonical).Create();
        throw new DiffusionArgumentException($"Sampler '{name}' is not known. Samplers: {string.Join(", ", All.Select(e => e.Name))} (also known by k-diffusion's, the A1111 web UI's and diffusers' names, e.g. euler_a, DPM++ 2M, DDIMScheduler).");
    }
}
