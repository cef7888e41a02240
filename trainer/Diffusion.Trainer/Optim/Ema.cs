using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Optim;

/// <summary>
/// Exponential moving average of a module's weights, kept in a second module of the same architecture (so it can be
/// exported and saved like any module): θ̄ ← d·θ̄ + (1 − d)·θ, with d warmed up as min(decay, (1 + n)/(10 + n)).
/// </summary>
public sealed class Ema<TModule> : IDisposable where TModule : nn.Module
{
    private readonly Parameter[] _source, _shadow;

    /// <summary>The averaged module.</summary>
    public TModule Average { get; }

    /// <summary>Target decay.</summary>
    public double Decay { get; }

    /// <summary>
    /// Starts <paramref name="average"/> (same architecture as <paramref name="source"/>) at the source's current
    /// weights.
    /// </summary>
    public Ema(nn.Module source, TModule average, double decay = 0.999)
    {
        _source = source.parameters().ToArray();
        _shadow = average.parameters().ToArray();
        if (_source.Length != _shadow.Length
            || _source.Zip(_shadow).Any(p => !p.First.shape.SequenceEqual(p.Second.shape)))
            throw new ArgumentException("The EMA module must have the architecture of the trained module.");
        Average = average;
        Decay = decay;
        average.eval();
        using var noGrad = no_grad();
        for (int i = 0; i < _shadow.Length; i++)
        {
            _shadow[i].requires_grad = false;
            _shadow[i].copy_(_source[i]);
        }
    }

    /// <summary>Folds in the current weights after optimizer step <paramref name="step"/>.</summary>
    public void Update(long step)
    {
        double d = Math.Min(Decay, (1.0 + step) / (10.0 + step));
        using var noGrad = no_grad();
        for (int i = 0; i < _shadow.Length; i++) _shadow[i].mul_(d).add_(_source[i], alpha: 1 - d);
    }

    /// <inheritdoc />
    public void Dispose() => Average.Dispose();
}
