using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Schedules;
using Diffusion.Trainer.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Training;

/// <summary>
/// How the per-timestep losses are weighted, as weights w(t) on the x₀ error (Hang et al. 2023's framing).
/// </summary>
public enum LossWeighting
{
    /// <summary>Plain MSE on the network's own target (Ho et al. 2020's L_simple).</summary>
    Simple,
    /// <summary>
    /// w(t) = SNR(t): the ε-MSE expressed for any target (equals Simple for ε-prediction). This is also score matching
    /// with Song et al.'s σ² weighting ("sgm"): σ²‖s_θ − ∇log q(x_t | x₀)‖² = ‖ε̂ − ε‖² = SNR·‖x̂₀ − x₀‖².
    /// </summary>
    Snr,
    /// <summary>w(t) = min(SNR(t), γ) (Min-SNR-γ, Hang et al. 2023).</summary>
    MinSnr,
    /// <summary>
    /// The variational bound's own weights: L_t = c₁(t)²‖x₀ − x̂₀‖²/2Σ_t + const (Σ_t = β̃_t, fixed_small, as the
    /// export declares), so w(t) = T·c₁²/2Σ_t and the loss's expectation over uniform t is the bound in nats per
    /// dimension, up to constants (Ho et al. 2020, eq. 8–10; the decoder term in its Gaussian form).
    /// </summary>
    Vlb,
}

/// <summary>The names of <see cref="LossWeighting"/>s: simple, snr (alias sgm), min-snr, vlb.</summary>
public static class LossWeightings
{
    /// <summary>The weighting's name.</summary>
    public static string Name(this LossWeighting weighting) => weighting switch
    {
        LossWeighting.Snr => "snr",
        LossWeighting.MinSnr => "min-snr",
        LossWeighting.Vlb => "vlb",
        _ => "simple",
    };

    /// <summary>
    /// simple, snr (or sgm, its score-matching name), min-snr or vlb (any case); anything else is an error naming
    /// <see cref="TrainConfig.Weighting"/>.
    /// </summary>
    public static LossWeighting Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "simple" => LossWeighting.Simple,
        "snr" or "sgm" => LossWeighting.Snr,
        "min-snr" or "minsnr" => LossWeighting.MinSnr,
        "vlb" => LossWeighting.Vlb,
        _ => throw new DiffusionArgumentException(nameof(TrainConfig.Weighting),
            $"'{text}': expected simple, snr, sgm, min-snr or vlb."),
    };
}

/// <summary>
/// The denoising objective: x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε with the runtime's schedule (one source of truth for ᾱ),
/// target ε, v = √ᾱ ε − √(1−ᾱ) x₀ or x₀, per-timestep weights, and label dropout for classifier-free guidance.
/// </summary>
public sealed class DiffusionObjective : IDisposable
{
    private readonly NoiseSchedule _schedule;
    private readonly Tensor _sqrtAlphaBar, _sqrtOneMinusAlphaBar, _velocityOnNoise, _velocityOnSample, _weights;
    private readonly PredictionType _prediction;
    private readonly double _labelDropout;
    private readonly int _nullLabel;
    private readonly Device _device;
    private readonly float[] _weightTable;

    /// <summary>The objective for <paramref name="schedule"/>, its tables on <paramref name="device"/>.</summary>
    public DiffusionObjective(NoiseSchedule schedule, PredictionType prediction, LossWeighting weighting,
        double minSnrGamma, double labelDropout, int numClasses, Device device)
    {
        (_schedule, _prediction, _labelDropout, _nullLabel, _device) = (schedule, prediction, labelDropout, numClasses,
            device);
        var ab = schedule.AlphasCumprod;
        int count = ab.Length;
        var a = new float[count];
        var s = new float[count];
        var w = new float[count];
        var vNoise = new float[count];
        var vSample = new float[count];
        var kernels = new ReverseKernels(schedule);
        for (int i = 0; i < count; i++)
        {
            var (alpha, sigma) = ForwardProcess.Coefficients(schedule, i);
            (a[i], s[i]) = ((float)alpha, (float)sigma);
            var (onNoise, onSample) = PredictionTypes.Velocity(alpha, sigma);
            (vNoise[i], vSample[i]) = ((float)onNoise, (float)onSample);
            double snr = ab[i] / Math.Max(1 - ab[i], 1e-12);
            double x0Weight = weighting switch
            {
                LossWeighting.Simple => double.NaN,
                LossWeighting.Snr => snr,
                LossWeighting.MinSnr => Math.Min(snr, minSnrGamma),
                LossWeighting.Vlb => count * kernels.MeanOnSample(i) * kernels.MeanOnSample(i)
                    / (2 * Math.Exp(kernels.LogVariance(i))),
                _ => throw new ArgumentOutOfRangeException(nameof(weighting)),
            };
            // The target's error relates to the x₀ error by a factor c(t): ε: SNR, v: SNR + 1, x₀: 1.
            double factor = prediction switch
            {
                PredictionType.Epsilon => snr, PredictionType.VPrediction => snr + 1, _ => 1,
            };
            w[i] = double.IsNaN(x0Weight) ? 1f : (float)(x0Weight / Math.Max(factor, 1e-12));
        }
        _sqrtAlphaBar = tensor(a, device: device).DetachFromDisposeScope();
        _sqrtOneMinusAlphaBar = tensor(s, device: device).DetachFromDisposeScope();
        _weightTable = w;
        _weights = tensor(w, device: device).DetachFromDisposeScope();
        _velocityOnNoise = tensor(vNoise, device: device).DetachFromDisposeScope();
        _velocityOnSample = tensor(vSample, device: device).DetachFromDisposeScope();
    }

    /// <summary>The weight on the network target's squared error at training timestep <paramref name="t"/>.</summary>
    public float Weight(int t) => _weightTable[t];

    /// <summary>q(x_t | x₀): √ᾱ_t x₀ + √(1−ᾱ_t) ε for integer timesteps t [B].</summary>
    public Tensor QSample(Tensor x0, Tensor t, Tensor noise)
    {
        long b = x0.shape[0];
        return _sqrtAlphaBar.index_select(0, t).reshape(b, 1, 1, 1) * x0
            + _sqrtOneMinusAlphaBar.index_select(0, t).reshape(b, 1, 1, 1) * noise;
    }

    /// <summary>
    /// The weighted loss of <paramref name="net"/> on a batch (x₀ in [−1, 1] on the device), with all randomness from
    /// <paramref name="g"/> (a CPU generator). With <paramref name="shard"/>, x₀ holds rows [From, From + Count) of a
    /// batch of Total images: t, ε and label dropout are drawn for the whole batch and sliced, so that every rank of a
    /// data-parallel run uses the draws one process would have made for those rows.
    /// </summary>
    public Tensor Loss(UNet net, Tensor x0, Tensor? labels, Generator g, BatchShard? shard = null)
    {
        long b = x0.shape[0];
        var (from, total) = shard is { } s ? (s.From, s.Total) : (0, (int)b);
        if (from + b > total)
            throw new ArgumentException($"Shard rows {from}…{from + b - 1} lie outside a batch of {total}.");
        Tensor Rows(Tensor all) => b == total ? all : all.narrow(0, from, b);
        var t = Rows(randint(_schedule.TrainTimesteps, [total], generator: g)).to(_device);
        var noise = Rows(randn([total, .. x0.shape[1..]], generator: g)).to(_device);
        var xt = QSample(x0, t, noise);
        if (labels is not null && _labelDropout > 0)
        {
            var drop = Rows(rand([total], generator: g) < _labelDropout).to(_device);
            labels = where(drop, full([b], _nullLabel, ScalarType.Int64, _device), labels);
        }
        var prediction = net.forward(xt, t.to_type(ScalarType.Float32), labels);
        var target = _prediction switch
        {
            PredictionType.Epsilon => noise,
            PredictionType.Sample => x0,
            _ => _velocityOnNoise.index_select(0, t).reshape(b, 1, 1, 1) * noise
                + _velocityOnSample.index_select(0, t).reshape(b, 1, 1, 1) * x0,
        };
        var perImage = (prediction - target).square().mean([1, 2, 3]);
        return (perImage * _weights.index_select(0, t)).mean();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _sqrtAlphaBar.Dispose();
        _sqrtOneMinusAlphaBar.Dispose();
        _weights.Dispose();
        _velocityOnNoise.Dispose();
        _velocityOnSample.Dispose();
    }
}

/// <summary>
/// Rows [<see cref="From"/>, <see cref="From"/> + n) of a global batch of <see cref="Total"/> images.
/// </summary>
public readonly record struct BatchShard(int From, int Total);
