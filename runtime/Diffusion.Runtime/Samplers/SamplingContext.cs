using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// Everything a sampler works with for one batch: the model view, the grid of noise levels, the batch x (VP space),
/// scratch buffers allocated once per generation, keyed noise draws, options, progress and cancellation.
/// </summary>
public sealed class SamplingContext
{
    private readonly List<float[]> _buffers = [];
    private readonly NoiseGenerator _noise;
    private readonly Action<int>? _stepDone;
    private long _firstImage;
    private uint _draw;

    /// <summary>
    /// Creates a context for batches of <paramref name="model"/>.BatchSize images; <paramref name="scheduleSteps"/> is
    /// the step count the grid was made for (default: its own; more where img2img runs only its last steps).
    /// </summary>
    public SamplingContext(Denoiser model, NoiseLevel[] grid, ulong seed, SamplerOptions? options = null,
        Action<int>? stepDone = null, CancellationToken cancellation = default, int? scheduleSteps = null)
    {
        if (grid.Length < 2 || grid[0].IsClean)
            throw new ArgumentException("A sampling grid holds at least one noisy level before its last level.",
                nameof(grid));
        Model = model;
        Grid = grid;
        X = new float[model.BatchSize * model.ImageSize];
        _noise = new NoiseGenerator(seed);
        Options = options ?? new SamplerOptions();
        _stepDone = stepDone;
        Cancellation = cancellation;
        ScheduleSteps = scheduleSteps ?? grid.Length - 1;
        if (ScheduleSteps < Steps)
            throw new ArgumentOutOfRangeException(nameof(scheduleSteps), "a grid holds at most the schedule's steps");
    }

    /// <summary>The model view.</summary>
    public Denoiser Model { get; }
    /// <summary>
    /// Noise levels to visit, most noisy first, ending with <see cref="NoiseLevel.Clean"/> — or, for a sampler that
    /// builds such a grid itself (diffusers' final_sigmas_type "sigma_min"), with a noisy level where the sample is
    /// returned as it is.
    /// </summary>
    public NoiseLevel[] Grid { get; }
    /// <summary>Number of steps: one per grid interval.</summary>
    public int Steps => Grid.Length - 1;
    /// <summary>
    /// n, the steps of the schedule the grid was made for: <see cref="Steps"/>, or more where img2img (SDEdit) runs only
    /// the last steps of an n-step grid — what a scheduler that steps by ⌊T/n⌋ (diffusers' DDIM, PNDM) steps by.
    /// </summary>
    public int ScheduleSteps { get; }
    /// <summary>
    /// The batch, [B,C,H,W] flattened: x_T on entry (VP space), x at the grid's last level on exit (x₀ at the clean
    /// level).
    /// </summary>
    public float[] X { get; }
    /// <summary>Images in the batch.</summary>
    public int BatchSize => Model.BatchSize;
    /// <summary>Values per image.</summary>
    public int ImageSize => Model.ImageSize;
    /// <summary>Sampler options.</summary>
    public SamplerOptions Options { get; }
    /// <summary>Cancellation of the generation.</summary>
    public CancellationToken Cancellation { get; }

    /// <summary>
    /// Scratch buffer number <paramref name="slot"/>, the size of <see cref="X"/>; allocated on first use, reused by
    /// every later batch.
    /// </summary>
    public float[] Buffer(int slot)
    {
        while (_buffers.Count <= slot) _buffers.Add(new float[X.Length]);
        return _buffers[slot];
    }

    /// <summary>
    /// Points the context at images <paramref name="firstImage"/>… and restarts the draw count; x_T is draw 0.
    /// </summary>
    public void Begin(long firstImage)
    {
        _firstImage = firstImage;
        _draw = 0;
    }

    /// <summary>
    /// Fills <paramref name="destination"/> with this batch's next N(0, I) draw (keyed by seed, image index and draw
    /// number).
    /// </summary>
    public void DrawNoise(Span<float> destination) => _noise.Fill(destination, _firstImage, ImageSize, ++_draw);

    /// <summary>Fills <paramref name="destination"/> with the initial noise x_T of this batch (draw 0).</summary>
    public void DrawInitialNoise(Span<float> destination) => _noise.Fill(destination, _firstImage, ImageSize, 0);

    /// <summary>A constraint applied after every grid step (inpainting), or null.</summary>
    public IStepConstraint? Constraint { get; set; }

    /// <summary>
    /// Marks grid step <paramref name="step"/> done with x (held in <paramref name="space"/>) at Grid[step + 1]:
    /// applies the constraint, reports progress, honours cancellation.
    /// </summary>
    public void StepDone(int step, float[] x, SampleSpace space)
    {
        Space = space;
        Constraint?.Apply(this, x, Grid[step + 1], space);
        Progress(step);
    }

    /// <summary>The space x was held in at the last <see cref="StepDone"/> (the same at the clean level).</summary>
    public SampleSpace Space { get; private set; }

    /// <summary>Reports progress (step counter) and honours cancellation.</summary>
    public void Progress(int step)
    {
        _stepDone?.Invoke(step);
        Cancellation.ThrowIfCancellationRequested();
    }

    /// <summary>One image of a batch buffer.</summary>
    public Span<float> Image(float[] batch, int i) => batch.AsSpan(i * ImageSize, ImageSize);
}
