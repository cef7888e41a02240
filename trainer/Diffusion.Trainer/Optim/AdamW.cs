using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Optim;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter 2019, Alg. 2): p ← p(1 − ηλ) − η m̂/(√v̂ + ε) with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ).
/// The moments live beside the parameters; their tensors go into checkpoints.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly IReadOnlyList<Tensor> _parameters;
    private readonly Tensor[] _m, _v;

    /// <summary>Learning rate η (the schedule sets it each step).</summary>
    public double LearningRate { get; set; }
    /// <summary>β₁.</summary>
    public double Beta1 { get; }
    /// <summary>β₂.</summary>
    public double Beta2 { get; }
    /// <summary>ε.</summary>
    public double Eps { get; }
    /// <summary>Decoupled weight decay λ.</summary>
    public double WeightDecay { get; }
    /// <summary>Steps taken.</summary>
    public long Step { get; set; }

    /// <summary>An optimizer over <paramref name="parameters"/>.</summary>
    public AdamW(IReadOnlyList<Tensor> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
    {
        _parameters = parameters;
        (LearningRate, Beta1, Beta2, Eps, WeightDecay) = (lr, beta1, beta2, eps, weightDecay);
        _m = parameters.Select(p => DisposeScope.Detach(Tensor.Zeros(p.Shape))).ToArray();
        _v = parameters.Select(p => DisposeScope.Detach(Tensor.Zeros(p.Shape))).ToArray();
    }

    /// <summary>The first and second moments, in parameter order (for checkpoints).</summary>
    public IEnumerable<Tensor> State => _m.Concat(_v);

    /// <summary>One update from the accumulated gradients.</summary>
    public void StepOnce()
    {
        Step++;
        double bc1 = 1 - Math.Pow(Beta1, Step), bc2 = 1 - Math.Pow(Beta2, Step);
        using var noGrad = new NoGrad();
        for (int i = 0; i < _parameters.Count; i++)
        {
            using var scope = DisposeScope.Enter();
            var p = _parameters[i];
            var g = p.Grad;
            if (g is null) continue;
            p.MulInPlace(1 - LearningRate * WeightDecay);
            _m[i].MulInPlace(Beta1);
            _m[i].AddInPlace(g, 1 - Beta1);
            _v[i].MulInPlace(Beta2);
            _v[i].AddcmulInPlace(g, g, 1 - Beta2);
            var denominator = _v[i].Sqrt() * (1 / Math.Sqrt(bc2)) + Eps;
            p.AddcdivInPlace(_m[i], denominator, -LearningRate / bc1);
        }
    }

    /// <summary>Scales all gradients so that their joint L2 norm is at most <paramref name="maxNorm"/>; returns the norm before.</summary>
    public static double ClipGradNorm(IReadOnlyList<Tensor> parameters, double maxNorm)
    {
        using var scope = DisposeScope.Enter();
        using var noGrad = new NoGrad();
        var grads = parameters.Select(p => p.Grad).OfType<Tensor>().ToList();
        double total = Math.Sqrt(grads.Sum(g => g.Square().Sum().Item()));
        if (total > maxNorm && total > 0)
            foreach (var g in grads) g.MulInPlace(maxNorm / (total + 1e-6));
        return total;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
    }
}
