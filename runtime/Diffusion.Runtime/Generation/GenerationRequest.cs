using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Generation;

/// <summary>What to generate and how: one plain record; every option is read from here only.</summary>
public sealed record GenerationRequest
{
    /// <summary>
    /// Sampler name or alias (see <see cref="SamplerRegistry"/>), or <see cref="SamplerRegistry.DiffusersName"/> for
    /// the scheduler the model's diffusers config names, walked as diffusers walks it; null: the model's default — that
    /// scheduler when its config names one (<c>_class_name</c>), else <see cref="SamplerRegistry.DefaultName"/>.
    /// </summary>
    public string? Sampler { get; init; }

    /// <summary>Sampling steps (grid intervals).</summary>
    public int Steps { get; init; } = 20;
    /// <summary>Number of images.</summary>
    public int Count { get; init; } = 16;
    /// <summary>Seed of the noise; image i of a seed is the same at any batch size.</summary>
    public ulong Seed { get; init; }
    /// <summary>
    /// Where this request's images sit in <see cref="Seed"/>'s sequence: image j of the request is image
    /// <c>FirstImage + j</c> of the seed (its noise). A share of a larger generation — one process's of several —
    /// is then the same images as that generation's, bit for bit. The request's own arrays (labels, images, masks,
    /// initial noise) are still indexed from 0.
    /// </summary>
    public long FirstImage { get; init; }
    /// <summary>
    /// Images per network call at most (the memory bound); classifier-free guidance doubles the network batch.
    /// </summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Classifier-free guidance weight w (1 = none): ε̂ = ε̂_∅ + w(ε̂_c − ε̂_∅).</summary>
    public float Guidance { get; init; } = 1;
    /// <summary>
    /// Class label per image: empty = the null label (unconditional); one entry = every image; else one per image.
    /// </summary>
    public int[] ClassLabels
    {
        get; init => field = value ?? throw new ArgumentNullException(nameof(ClassLabels));
    } = [];
    /// <summary>
    /// The condition c of a model whose conditioning inputs are not (only) class labels — text embeddings, or anything
    /// a model family takes — by input name; null: the conditioning comes from <see cref="ClassLabels"/>.
    /// </summary>
    public Condition? Condition { get; init; }
    /// <summary>
    /// The unconditional side ∅ of classifier-free guidance for <see cref="Condition"/> (e.g. the empty or negative
    /// prompt's embedding); needed when <see cref="Guidance"/> ≠ 1.
    /// </summary>
    public Condition? UnconditionalCondition { get; init; }
    /// <summary>
    /// Channels the model reads after x's (<see cref="Onnx.DiffusionModel.ConcatChannels"/>), entries [E, H, W], one
    /// per image or one for all — an inpainting UNet's mask and masked-image latents, which the text-to-image pipeline
    /// makes from <see cref="KnownImages"/> and <see cref="Mask"/>; null for every other model.
    /// </summary>
    public Conditioning.ConditioningTensor? ConcatenatedChannels { get; init; }
    /// <summary>The prompt of a text-to-image model; null: none (a pixel model, or the empty prompt).</summary>
    public string? Prompt { get; init; }
    /// <summary>
    /// What guidance steers away from (a text-to-image model with <see cref="Guidance"/> ≠ 1); null: the empty prompt.
    /// </summary>
    public string? NegativePrompt { get; init; }
    /// <summary>Image width in pixels; null: the model's.</summary>
    public int? Width { get; init; }
    /// <summary>Image height in pixels; null: the model's.</summary>
    public int? Height { get; init; }
    /// <summary>
    /// Caller-supplied x_T, [Count, C, H, W] flattened (a latent model's: latents); null draws it from the seed.
    /// </summary>
    public float[]? InitialNoise { get; init; }
    /// <summary>
    /// img2img (SDEdit, Meng et al. 2022): images [Count, C, H, W] in [−1, 1] to start from instead of pure noise.
    /// </summary>
    public float[]? InitialImages { get; init; }
    /// <summary>
    /// img2img strength s ∈ (0, 1]: the input is noised to the grid level at fraction s of the steps and denoised from
    /// there (1 = from pure noise).
    /// </summary>
    public double Strength { get; init; } = 1;
    /// <summary>
    /// Inpainting: known images [Count, C, H, W] in [−1, 1]; pixels where <see cref="Mask"/> is 1 are kept exactly.
    /// </summary>
    public float[]? KnownImages { get; init; }
    /// <summary>Inpainting mask [Count, C, H, W]: 1 = keep the known pixel, 0 = generate.</summary>
    public float[]? Mask { get; init; }
    /// <summary>
    /// Inpainting: the noise that brings the known images to each level — a fresh draw every step (default), or each
    /// image's initial noise x_T, as diffusers' StableDiffusionInpaintPipeline does for a 4-channel UNet.
    /// </summary>
    public Editing.KnownImageNoise KnownImageNoise { get; init; } = Editing.KnownImageNoise.Fresh;
    /// <summary>Timestep spacing; null takes the model config's timestep_spacing.</summary>
    public TimestepSpacing? Spacing { get; init; }
    /// <summary>
    /// Use Karras' σ grid (true) or timesteps by <see cref="Spacing"/> (false); null takes the model config's
    /// use_karras_sigmas.
    /// </summary>
    public bool? KarrasSigmas { get; init; }
    /// <summary>Sampler knobs; null ones take the sampler's defaults, and one it does not read is refused.</summary>
    public SamplerOptions Options
    {
        get; init => field = value ?? throw new ArgumentNullException(nameof(Options));
    } = new();
    /// <summary>
    /// A sampler chosen by type with its own settings, e.g. <c>new Ddim { Eta = 0.5 }</c> or
    /// <c>new DormandPrince { RelativeTolerance = 1e-4 }</c>; when given, <see cref="Sampler"/> and the sampler knobs of
    /// <see cref="Options"/> must be left unset (<see cref="SamplerOptions.Resampling"/> still applies).
    /// </summary>
    public ISampler? SamplerInstance { get; init; }
}
