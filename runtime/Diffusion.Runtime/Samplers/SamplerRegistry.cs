namespace Diffusion.Runtime.Samplers;

/// <summary>The samplers by name, with a line each on what they implement.</summary>
public static class SamplerRegistry
{
    /// <summary>Name, one-line description and factory of every sampler.</summary>
    public static IReadOnlyList<(string Name, string Description, Func<ISampler> Create)> All { get; } =
    [
        ("ddpm", "DDPM ancestral, posterior variance β̃ (fixed_small) — Ho et al. 2020", () => new Ddpm(fixedLarge: false)),
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
        ("rk45", "Adaptive Dormand–Prince RK45 on the PF-ODE (rtol/atol; chooses its own steps) — Song et al. 2021", () => new DormandPrince()),
    ];

    /// <summary>The sampler called <paramref name="name"/>; an unknown name lists the known ones.</summary>
    public static ISampler Create(string name)
    {
        foreach (var entry in All)
            if (string.Equals(entry.Name, name.Trim(), StringComparison.OrdinalIgnoreCase)) return entry.Create();
        throw new DiffusionArgumentException($"Sampler '{name}' is not known. Samplers: {string.Join(", ", All.Select(e => e.Name))}.");
    }
}
