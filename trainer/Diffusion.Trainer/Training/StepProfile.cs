using System.Diagnostics;

namespace Diffusion.Trainer.Training;

/// <summary>
/// Where a training step's time goes: wall time per phase (data, forward, backward, clip, optimizer, EMA), summed over
/// steps.
/// </summary>
public sealed class StepProfile
{
    private readonly Stopwatch _watch = new();
    private readonly Dictionary<string, double> _milliseconds = [];
    private readonly List<string> _order = [];

    /// <summary>Steps recorded.</summary>
    public int Steps { get; private set; }

    /// <summary>Starts timing a step.</summary>
    public void Begin() => _watch.Restart();

    /// <summary>Ends the current phase, called <paramref name="phase"/>, and starts the next.</summary>
    public void Mark(string phase)
    {
        if (!_milliseconds.ContainsKey(phase))
        {
            _milliseconds[phase] = 0;
            _order.Add(phase);
        }
        _milliseconds[phase] += _watch.Elapsed.TotalMilliseconds;
        _watch.Restart();
    }

    /// <summary>Ends a step.</summary>
    public void End() => Steps++;

    /// <summary>Mean milliseconds per step of each phase, in the order the phases first occurred.</summary>
    public IReadOnlyList<(string Phase, double Milliseconds)> MeanPerStep() =>
        _order.Select(p => (p, _milliseconds[p] / Math.Max(1, Steps))).ToList();
}
