using System.Diagnostics;
using Diffusion.Runtime.Generation;

namespace Diffusion.Cli.Output;

/// <summary>
/// Progress off a terminal: at most one line every few seconds on stderr, with the share done, the time so far and an
/// estimate of the time left ("sampling: 40/160 images (25 %), 12 s, about 36 s left"). Thread-safe.
/// </summary>
public sealed class ProgressLines(TextWriter error, string what, TimeSpan? every = null) : IProgress<GenerationProgress>
{
    private readonly Stopwatch _watch = Stopwatch.StartNew();
    private readonly TimeSpan _every = every ?? TimeSpan.FromSeconds(5);
    private readonly Lock _gate = new();
    private TimeSpan _last;

    /// <summary>Reports a fraction <paramref name="done"/> of the whole, with <paramref name="detail"/>.</summary>
    public void Report(double done, string detail)
    {
        lock (_gate)
        {
            var now = _watch.Elapsed;
            if (now - _last < _every || done <= 0) return;
            _last = now;
            var left = TimeSpan.FromSeconds(now.TotalSeconds * (1 - done) / done);
            error.WriteLine($"{what}: {detail} ({done:P0}), {Format(now)}, about {Format(left)} left");
        }
    }

    /// <inheritdoc />
    public void Report(GenerationProgress p) => Report(p.Fraction, $"{p.ImagesDone}/{p.ImagesTotal} images");

    private static string Format(TimeSpan t) => t.TotalMinutes >= 2 ? $"{t.TotalMinutes:0.#} min"
        : $"{t.TotalSeconds:0} s";
}
