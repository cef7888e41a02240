using System.CommandLine;
using System.Globalization;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Samplers;

namespace Diffusion.Cli.Commands;

/// <summary>
/// The options of <c>sample</c>, <c>img2img</c> and <c>inpaint</c>: the request's defaults are
/// <see cref="GenerationRequest"/>'s, and the sampler knobs stay unset unless given, so that each sampler's own
/// default (<see cref="SamplerInfo.Defaults"/>, listed in --help) applies.
/// </summary>
internal sealed class SampleOptions(SampleCommand.Mode mode)
{
    private static readonly GenerationRequest Defaults = new();

    /// <summary>
    /// img2img's default strength: an edit keeps the input's layout (a request's own default, 1, redraws it).
    /// </summary>
    private const double DefaultStrength = 0.6;

    public ModelArguments Model { get; } = new();
    public Option<int> Processes { get; } = Ranks.Option();
    public ImageArguments Images { get; } = new();
    public Option<string?> Sampler { get; } = new("--sampler", "-s")
    {
        Description = $"Sampler (see `samplers`); `{SamplerRegistry.DiffusersName}`: the scheduler a diffusers config "
            + "names, walked as diffusers walks it. Default: that scheduler when the model's config names one, else "
            + $"{SamplerRegistry.DefaultName}.",
    };
    public Option<int> Steps { get; } = new("--steps")
    {
        Description = "Sampling steps.", DefaultValueFactory = _ => Defaults.Steps,
    };
    public Option<int?> Count { get; } = new("--count", "-n")
    {
        Description = $"Number of images (default {Defaults.Count}, {SampleCommand.TextToImageCount} for a " +
            "text-to-image model, or as many as --init-noise holds).",
    };
    public Option<ulong> Seed { get; } = new("--seed")
    {
        Description = "Noise seed; image i of a seed is the same at any --batch.", DefaultValueFactory = _ =>
            Defaults.Seed,
    };
    public Option<int> Batch { get; } = new("--batch")
    {
        Description = "Images per network call at most (guidance doubles the network batch).",
        DefaultValueFactory = _ => Defaults.BatchSize,
    };
    public Option<double?> Eta { get; } = new("--eta")
    {
        Description = $"Stochasticity η (0 = the ODE): {KnobDefaults(SamplerKnobs.Eta, o => o.Eta)}.",
    };
    public Option<float?> Guidance { get; } = new("--guidance", "-g")
    {
        Description = $"Classifier-free guidance weight (1 = none); default {Defaults.Guidance}, or "
            + $"{SampleCommand.TextToImageGuidance} for a text-to-image model (diffusers' default).",
    };
    public Option<string?> Prompt { get; } = new("--prompt", "-p")
    {
        Description = "What to draw (a text-to-image model).",
    };
    public Option<string?> NegativePrompt { get; } = new("--negative-prompt")
    {
        Description = "What guidance steers away from (default: the empty prompt).",
    };
    public Option<int?> Width { get; } = new("--width")
    {
        Description = "Image width in pixels, a multiple of the VAE's factor (default: the model's).",
    };
    public Option<int?> Height { get; } = new("--height")
    {
        Description = "Image height in pixels (default: the model's).",
    };
    public Option<string?> Class { get; } = new("--class", "-c")
    {
        Description = "Class name or id for every image; 'all' cycles through the classes (the default for "
            + "class-conditional models); 'none' samples unconditionally.",
    };
    public Option<string?> InitNoise { get; } = new("--init-noise")
    {
        Description = "x_T from a float32 .npy of shape [N,C,H,W].",
    };
    public Option<string> Out { get; } = new("--out", "-o")
    {
        Description = "FILE.png, .jpg or .webp (a grid; see --quality), FILE.npy (float32 [N,C,H,W], data range) or "
            + "DIR/ (one PNG each).",
        DefaultValueFactory = _ =>
            $"out/{(mode == SampleCommand.Mode.Sample ? "samples" : mode.ToString().ToLowerInvariant())}.png",
    };
    public Option<string?> Spacing { get; } = new("--spacing")
    {
        Description = "Timestep spacing: trailing, leading or linspace (default: the model config's).",
    };
    public Option<bool?> Karras { get; } = new("--karras")
    {
        Description = "Karras et al.'s σ grid (ρ = 7); --karras false forces timesteps. Default: the model's "
            + "use_karras_sigmas.",
    };
    public Option<double?> RelativeTolerance { get; } = new("--rtol")
    {
        Description = $"Relative tolerance of {KnobDefaults(SamplerKnobs.Tolerances, o => o.RelativeTolerance)}.",
    };
    public Option<double?> AbsoluteTolerance { get; } = new("--atol")
    {
        Description = $"Absolute tolerance of {KnobDefaults(SamplerKnobs.Tolerances, o => o.AbsoluteTolerance)}.",
    };
    public Option<double?> Snr { get; } = new("--snr")
    {
        Description = $"Langevin signal-to-noise ratio of {KnobDefaults(SamplerKnobs.Snr, o => o.Snr)}.",
    };
    public Option<int> Columns { get; } = new("--columns")
    {
        Description = "Columns of the image grid (0 = square).", DefaultValueFactory = _ => 0,
    };
    public Option<int?> Scale { get; } = new("--scale")
    {
        Description = "Enlarge image outputs N× (see --scale-filter); default: enough for 128 pixels a side (5× for "
            + "28×28).",
    };
    public Option<string> Image { get; } = new("--image")
    {
        Required = true, Description = $"Input: an image ({string.Join(", ", ImageFile.InputFormats)}; fitted to the "
            + "model as --resize says), or a float32 .npy [N,C,H,W] in [−1, 1].",
    };
    public Option<double> Strength { get; } = new("--strength")
    {
        Description = "Noise level to start from, in (0, 1]: 1 = plain generation, → 0 = the input.",
        DefaultValueFactory = _ => DefaultStrength,
    };
    public Option<int> Jumps { get; } = new("--jumps")
    {
        Description = "RePaint resampling: do each ddpm/ddim step this many times, re-noising in between (harmonises "
            + "the filled region).",
        DefaultValueFactory = _ => new SamplerOptions().Resampling,
    };
    public Option<string> Mask { get; } = new("--mask")
    {
        Required = true,
        Description = "Mask image as in diffusers: white = repaint, black = keep (see --mask-keeps; a gray mask "
            + "applies to every channel; resized with nearest neighbour), or a .npy of 1 = keep, 0 = repaint "
            + "[N,C,H,W].",
    };
    public Option<string> KnownNoise { get; } = new("--known-noise")
    {
        Description = "The noise that brings the kept pixels to each step's level: fresh (a new draw every step, "
            + "default) or initial (each image's x_T every step, as diffusers' StableDiffusionInpaintPipeline).",
        DefaultValueFactory = _ => "fresh",
    };
    public Option<string> MaskKeeps { get; } = new("--mask-keeps")
    {
        Description = "Which mask colour marks pixels to keep: black (diffusers' convention, default) or white.",
        DefaultValueFactory = _ => "black",
    };

    /// <summary>The options of this mode, in the order --help lists them, the model's last.</summary>
    public void AddTo(Command command)
    {
        Option[] common =
        [
            Prompt, NegativePrompt, Width, Height, Sampler, Steps, Count, Seed, Batch, Eta, Guidance, Class, InitNoise,
            Out, Spacing, Karras,
            RelativeTolerance, AbsoluteTolerance, Snr, Columns, Scale, Processes,
        ];
        Option[] edit = mode switch
        {
            SampleCommand.Mode.Img2Img => [Image, Strength],
            SampleCommand.Mode.Inpaint => [Image, Mask, MaskKeeps, Jumps, KnownNoise],
            _ => [],
        };
        foreach (var option in common) command.Options.Add(option);
        Images.AddOutputsTo(command);
        foreach (var option in edit) command.Options.Add(option);
        if (mode != SampleCommand.Mode.Sample) Images.AddInputsTo(command);
        Model.AddTo(command);
    }

    /// <summary>
    /// "sampler (default) …" for the samplers that read <paramref name="knob"/>, from their own declarations.
    /// </summary>
    private static string KnobDefaults(SamplerKnobs knob, Func<SamplerOptions, double?> value) =>
        string.Join(", ", SamplerRegistry.All.Where(e => e.Knobs.HasFlag(knob))
            .Select(e => $"{e.Name} (default {value(e.Defaults)?.ToString(CultureInfo.InvariantCulture)})"));
}
