using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;

namespace Diffusion.Runtime.Generation;

/// <summary>
/// A request's images in micro-batches of at most a batch size: one <see cref="Denoiser"/> (buffers and ONNX Runtime
/// binding) per batch size that occurs — at most two, the full batches and the remainder — each slice's conditioning
/// bound on it, everything disposed at the end. The one batching loop of generation and of DDIM inversion.
/// </summary>
internal static class MicroBatches
{
    /// <summary>Network use summed over the denoisers.</summary>
    public readonly record struct Use(long Evaluations, long ModelTicks);

    /// <summary>
    /// Runs <paramref name="run"/>(state, first image, images) over the <paramref name="count"/> images, with the
    /// state <paramref name="prepare"/> made once per batch size around its denoiser, at <paramref name="shape"/>.
    /// </summary>
    public static Use Run<TState>(DiffusionModel model, ImageShape shape, int count, int batchSize,
        Conditions conditions, Func<Denoiser, TState> prepare, Action<TState, int, int> run,
        CancellationToken cancellation)
    {
        var states = new Dictionary<int, (Denoiser Denoiser, TState State)>();
        long evaluations = 0, ticks = 0;
        try
        {
            for (int start = 0; start < count; start += batchSize)
            {
                int n = Math.Min(batchSize, count - start);
                if (!states.TryGetValue(n, out var entry))
                {
                    var denoiser = new Denoiser(model, n, conditions, shape, cancellation);
                    states[n] = entry = (denoiser, prepare(denoiser));
                }
                cancellation.ThrowIfCancellationRequested();
                entry.Denoiser.SetImages(start);
                run(entry.State, start, n);
            }
        }
        finally
        {
            foreach (var (denoiser, _) in states.Values)
            {
                evaluations += denoiser.Evaluations;
                ticks += denoiser.ModelTicks;
                denoiser.Dispose();
            }
        }
        return new Use(evaluations, ticks);
    }
}
