using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Optim;

/// <summary>Exponential moving average of the weights: θ̄ ← d·θ̄ + (1 − d)·θ, with d warmed up as min(decay, (1 + n)/(10 + n)).</summary>
public sealed class Ema : IDisposable
{
    private readonly IReadOnlyList<Tensor> _source;
    private readonly Tensor[] _shadow;

    /// <summary>Target decay.</summary>
    public double Decay { get; }

    /// <summary>Starts the average at the current weights of <paramref name="parameters"/>.</summary>
    public Ema(IReadOnlyList<Tensor> parameters, double decay = 0.999)
    {
        _source = parameters;
        Decay = decay;
        using var noGrad = new NoGrad();
        _shadow = parameters.Select(p => DisposeScope.Detach(p.Detach().Clone())).ToArray();
    }

    /// <summary>The averaged tensors, in parameter order.</summary>
    public IReadOnlyList<Tensor> Shadow => _shadow;

    /// <summary>Folds in the current weights after optimizer step <paramref name="step"/>.</summary>
    public void Update(long step)
    {
        double d = Math.Min(Decay, (1.0 + step) / (10.0 + step));
        using var noGrad = new NoGrad();
        for (int i = 0; i < _shadow.Length; i++)
        {
            _shadow[i].MulInPlace(d);
            _shadow[i].AddInPlace(_source[i], 1 - d);
        }
    }

    /// <summary>Copies the averaged weights into <paramref name="model"/> (same architecture), e.g. for export.</summary>
    public void CopyTo(Module model)
    {
        using var noGrad = new NoGrad();
        var target = model.Parameters();
        for (int i = 0; i < _shadow.Length; i++) target[i].CopyFrom(_shadow[i]);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _shadow) t.Dispose();
    }
}
