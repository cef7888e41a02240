namespace Diffusion.Runtime.Samplers;

/// <summary>The runtime's samplers by name; each declares itself in its own <see cref="SamplerInfo"/>.</summary>
public static class SamplerRegistry
{
    /// <summary>Every sampler, in the order the command line lists them.</summary>
    public static IReadOnlyList<SamplerInfo> All { get; } =
    [
        Ddpm.Info, Ddpm.LargeInfo, Ddim.Info, Euler.Info, Heun.Info, EulerAncestral.Info, EulerMaruyama.Info,
        PredictorCorrector.Info, DpmSolverPlusPlus2M.Info, DpmSolverPlusPlus2MSde.Info, DpmSolverPlusPlus3MSde.Info,
        UniPC.Info, LinearMultistep.Info, DormandPrince.Info,
    ];

    /// <summary>The sampler of models whose config names no diffusers scheduler.</summary>
    public const string DefaultName = "dpm++2m";

    /// <summary>
    /// The name that picks the scheduler a model's diffusers config names (<see cref="Diffusers.DiffusersSampler"/>).
    /// </summary>
    public const string DiffusersName = "diffusers";

    /// <summary>Whether <paramref name="name"/> asks for the model's diffusers scheduler.</summary>
    public static bool IsDiffusers(string name) => Key(name) == DiffusersName;

    // Matching ignores case, spaces, '_', '-', '+' and '.'.
    private static string Key(string name) =>
        new(name.Where(c => !char.IsWhiteSpace(c)
            && c is not ('_' or '-' or '+' or '.')).Select(char.ToLowerInvariant).ToArray());

    /// <summary>The sampler called <paramref name="name"/> (its own name or an alias), or null.</summary>
    public static SamplerInfo? Find(string name)
    {
        var key = Key(name);
        return All.FirstOrDefault(e => Key(e.Name) == key || e.Aliases.Any(a => Key(a) == key));
    }

    /// <summary>The samplers that read <paramref name="knob"/>, by name.</summary>
    public static string ReadersOf(SamplerKnobs knob) =>
        string.Join(", ", All.Where(e => e.Knobs.HasFlag(knob)).Select(e => e.Name));

    /// <summary>
    /// The sampler called <paramref name="name"/> with <paramref name="options"/>; an unknown name lists the known
    /// ones, and a knob it does not read is refused (naming the samplers that do).
    /// </summary>
    public static ISampler Create(string name, SamplerOptions? options = null)
    {
        var info = Find(name) ?? throw new DiffusionArgumentException("Sampler",
            $"'{Imaging.Printable.Of(name, 60)}' is not known. Samplers: {string.Join(", ", All.Select(e => e.Name))} "
            + "(also known by k-diffusion's, the A1111 web UI's and diffusers' names, e.g. euler_a, DPM++ 2M, DDIMScheduler).");
        options ??= new();
        CheckKnobs(info, options);
        return info.Create(options);
    }

    /// <summary>
    /// Refuses a knob of <paramref name="options"/> that the sampler <paramref name="info"/> does not read.
    /// </summary>
    public static void CheckKnobs(SamplerInfo info, SamplerOptions options)
    {
        foreach (var (parameter, knob) in options.Set())
            if (!info.Knobs.HasFlag(knob))
                throw new DiffusionArgumentException(parameter,
                    $"does not apply to the {info.Name} sampler; samplers that read it: {ReadersOf(knob)}.");
    }
}
