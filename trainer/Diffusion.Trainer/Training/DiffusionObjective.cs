using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Schedules;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Training;

/// <summary>How the per-timestep losses are weighted, as weights w(t) on the x₀ error (Hang et al. 2023's framing).</summary>
public enum LossWeighting
{
    /// <summary>Plain MSE on the network's own target (Ho et al. 2020's L_simple).</summary>
    Simple,
    /// <summary>w(t) = SNR(t): the ε-MSE expressed for any target (equals Simple for ε-prediction).</summary>
    Snr,
    /// <summary>w(t) = min(SNR(t), γ) (Min-SNR-γ, Hang et al. 2023).</summary>
    MinSnr,
}

/// <summary>
/// The denoising objective: x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε with the runtime's schedule (one source of truth for ᾱ),
/// target ε, v = √ᾱ ε − √(1−ᾱ) x₀ or x₀, per-timestep weights, and label dropout for classifier-free guidance.
/// </summary>
public sealed class DiffusionObjective : IDisposable
{
    private readonly NoiseSchedule _schedule;
    private readonly Tensor _sqrtAlphaBar, _sqrtOneMinusAlphaBar, _weights;
    private readonly PredictionType _prediction;
    private readonly double _labelDropout;
    private readonly int _nullLabel;
    private readonly Device _device;

    /// <summary>The objective for <paramref name="schedule"/>.</summary>
    public DiffusionObjective(NoiseSchedule schedule, PredictionType prediction, LossWeighting weighting, double minSnrGamma, double labelDropout, int numClasses, Device device)
    {
        (_schedule, _prediction, _labelDropout, _nullLabel, _device) = (schedule, prediction, labelDropout, numClasses, device);
        var ab = schedule.AlphasCumprod;
        int count = ab.Length;
        var a = new float[count];
        var s = new float[count];
        var w = new float[count];
        for (int i = 0; i < count; i++)
        {
            a[i] = (float)Math.Sqrt(ab[i]);
            s[i] = (float)Math.Sqrt(1 - ab[i]);
            double snr = ab[i] / Math.Max(1 - ab[i], 1e-12);
            double x0Weight = weighting switch
            {
                LossWeighting.Simple => double.NaN,
                LossWeighting.Snr => snr,
                LossWeighting.MinSnr => Math.Min(snr, minSnrGamma),
                _ => throw new ArgumentOutOfRangeException(nameof(weighting)),
            };
            // The target's error relates to the x₀ error by a factor c(t): ε: SNR, v: SNR + 1, x₀: 1.
            double factor = prediction switch { PredictionType.Epsilon => snr, PredictionType.VPrediction => snr + 1, _ => 1 };
            w[i] = double.IsNaN(x0Weight) ? 1f : (float)(x0Weight / Math.Max(factor, 1e-12));
        }
        _sqrtAlphaBar = DisposeScope.Detach(Tensor.FromArray(a, count).To(device));
        _sqrtOneMinusAlphaBar = DisposeScope.Detach(Tensor.FromArray(s, count).To(device));
        _weights = DisposeScope.Detach(Tensor.FromArray(w, count).To(device));
    }

    /// <summary>q(x_t | x₀): √ᾱ_t x₀ + √(1−ᾱ_t) ε for integer timesteps t [B].</summary>
    public Tensor QSample(Tensor x0, Tensor t, Tensor noise)
    {
        using var scope = DisposeScope.Enter();
        long b = x0.Size(0);
        var a = _sqrtAlphaBar.IndexSelect(0, t).Reshape(b, 1, 1, 1);
        var s = _sqrtOneMinusAlphaBar.IndexSelect(0, t).Reshape(b, 1, 1, 1);
        return scope.MoveToOuter(a * x0 + s * noise);
    }

    /// <summary>The weighted loss of <paramref name="net"/> on a batch (x₀ in [−1, 1] on the device), with all randomness from <paramref name="g"/>.</summary>
    public Tensor Loss(UNet net, Tensor x0, Tensor? labels, Generator g)
    {
        using var scope = DisposeScope.Enter();
        var shape = x0.Shape;
        long b = shape[0];
        var t = Tensor.RandInt(_schedule.TrainTimesteps, [b], g).To(_device);
        var noise = Tensor.Randn(shape, g).To(_device);
        var xt = QSample(x0, t, noise);
        if (labels is not null && _labelDropout > 0)
        {
            var drop = Tensor.Rand([b], g).Lt(_labelDropout).To(_device);
            labels = Tensor.Where(drop, Tensor.Full([b], _nullLabel, DType.Int64, _device), labels);
        }
        var prediction = net.Forward(xt, t.To(_device, DType.Float32), labels);
        var target = _prediction switch
        {
            PredictionType.Epsilon => noise,
            PredictionType.Sample => x0,
            _ => _sqrtAlphaBar.IndexSelect(0, t).Reshape(b, 1, 1, 1) * noise - _sqrtOneMinusAlphaBar.IndexSelect(0, t).Reshape(b, 1, 1, 1) * x0,
        };
        var perImage = (prediction - target).Square().Mean([1, 2, 3]);
        return scope.MoveToOuter((perImage * _weights.IndexSelect(0, t)).Mean());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _sqrtAlphaBar.Dispose();
        _sqrtOneMinusAlphaBar.Dispose();
        _weights.Dispose();
    }
}
