using System.Diagnostics;
using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Generation;

/// <summary>
/// The sampling loop every pipeline shares, in the network's own space (pixels, or latents): x_T per image from the
/// keyed noise (or the request's), SDEdit's shortened grid and noised start, the inpainting constraint, the sampler over
/// micro-batches with the conditioning bound, and no non-finite value let through. A request's arrays (initial noise,
/// initial and known images, mask) are in that space: a latent pipeline passes latents.
/// </summary>
internal static class SamplingRun
{
    /// <summary>The values the loop ends with, [Count, shape], and the network's use.</summary>
    public sealed record Outcome(float[] Values, long Evaluations, double EvaluationsPerImage, TimeSpan ModelTime,
        TimeSpan TotalTime);

    public static Outcome Run(DiffusionModel model, ImageShape shape, Conditions conditions,
        GenerationRequest request, ISampler sampler, NoiseLevel[] grid, IProgress<GenerationProgress>? progress,
        CancellationToken cancellation)
    {
        var watch = Stopwatch.StartNew();
        if (request.InitialImages is not null)
        {
            // SDEdit: keep the last round(s·n) steps of the grid; the input is noised to the first of them.
            int keep = (int)Math.Round(request.Strength * request.Steps);
            if (keep == 0) return new((float[])request.InitialImages.Clone(), 0, 0, TimeSpan.Zero, watch.Elapsed);
            grid = grid[^(keep + 1)..];
        }
        int d = shape.Size, count = request.Count;
        var values = new float[count * d]; // validation bounds count × d by Array.MaxLength
        var inpainting = request.KnownImages is null ? null
            : new Editing.Inpainting(request.KnownImages, request.Mask!, d, request.KnownImageNoise);
        int current = 0; // the first image of the batch being sampled, for progress
        var use = MicroBatches.Run(model, shape, count, request.BatchSize, conditions,
            denoiser => new SamplingContext(denoiser, grid, request.Seed, request.Options,
                progress is null ? null : step => progress.Report(new GenerationProgress(current, count, step + 1,
                    grid.Length - 1, Math.Min(request.BatchSize, count - current))),
                cancellation, scheduleSteps: request.Steps),
            (c, start, n) =>
            {
                current = start;
                c.Begin(request.FirstImage + start);
                c.Constraint = inpainting;
                InitialSample(request, sampler, c, start, n * d, inpainting);
                sampler.Sample(c);
                CheckFinite(c.X, start, d);
                c.X.CopyTo(values.AsSpan(start * d, n * d));
                progress?.Report(new GenerationProgress(start + n, count, grid.Length - 1, grid.Length - 1));
            },
            cancellation);
        int batches = (count + request.BatchSize - 1) / request.BatchSize;
        return new(values, use.Evaluations, (double)use.Evaluations / batches,
            Stopwatch.GetElapsedTime(0, use.ModelTicks), watch.Elapsed);
    }

    /// <summary>
    /// x at the grid's first level for the batch of images from <paramref name="start"/> (<paramref name="length"/>
    /// values): x_T, or an img2img input noised; the inpainting constraint is pointed at the batch and its x_T.
    /// </summary>
    private static void InitialSample(GenerationRequest request, ISampler sampler, SamplingContext c, int start,
        int length, Editing.Inpainting? inpainting)
    {
        var x = c.X.AsSpan();
        int offset = start * c.ImageSize;
        if (request.InitialNoise is { } init) init.AsSpan(offset, length).CopyTo(x);
        else c.DrawInitialNoise(x);
        inpainting?.Begin(start, x);
        if (request.InitialImages is { } images0)
            ForwardProcess.Sample(x, images0.AsSpan(offset, length), x, c.Grid[0]); // ε being the keyed x_T draw
        else if (sampler.InitialNoiseScale(c.Grid[0]) is var scale and not 1)
            Vec.Scale(c.X, scale, c.X);
    }

    private static void CheckFinite(float[] x, int start, int imageSize)
    {
        int bad = x.AsSpan().IndexOfAnyExceptInRange(float.MinValue, float.MaxValue);
        if (bad >= 0)
            throw new DiffusionException($"Sampling produced {x[bad]} in image {start + bad / imageSize}; "
                + "nothing was written. Try more steps or another sampler.");
    }
}
