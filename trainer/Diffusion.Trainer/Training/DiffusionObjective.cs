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
/// target ε, v = √ᾱ ε − √(1−ᾱ) x₀ or x₀, per-timestep weights, and label dropout for classifier-free guidance. A
/// network with a learned variance (<see cref="UNetConfig.LearnSigma"/>) is trained with improved DDPM's hybrid loss
/// L_simple + λ L_vlb, λ = 0.001: L_vlb = T · L_t in bits/dim, the bound's term at the drawn t with the model's mean
/// held fixed (x̂₀ detached, so that only v learns from it) — the KL to the forward posterior for t ≥ 1, the
/// discretized decoder's −log-likelihood of the 8-bit data for t = 0 — in the runtime's reverse kernels
/// (<see cref="ReverseKernels"/>: the bound the runtime measures).
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
    // the reverse kernels, for the learned variance's bound term: c₁, log β̃ (clipped at t = 0), log β
    private readonly Tensor _meanOnSample, _logPosterior, _logBeta;

    /// <summary>λ of the hybrid loss L_simple + λ L_vlb (Nichol &amp; Dhariwal 2021).</summary>
    public const double HybridWeight = 0.001;

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
        var (c1, logPosterior, logBeta) = (new float[count], new float[count], new float[count]);
        for (int i = 0; i < count; i++)
        {
            (c1[i], logPosterior[i]) = ((float)kernels.MeanOnSample(i), (float)kernels.LogPosteriorVariance(i));
            logBeta[i] = (float)kernels.LearnedLogVariance(i, 1); // f = 1: log β_t
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
        _meanOnSample = tensor(c1, device: device).DetachFromDisposeScope();
        _logPosterior = tensor(logPosterior, device: device).DetachFromDisposeScope();
        _logBeta = tensor(logBeta, device: device).DetachFromDisposeScope();
    }

    /// <summary>The weight on the network target's squared error at training timestep <paramref name="t"/>.</summary>
    public float Weight(int t) => _weightTable[t];

    /// <summary>√ᾱ_t for integer timesteps t [B].</summary>
    public Tensor SqrtAlphaBar(Tensor t) => _sqrtAlphaBar.index_select(0, t);

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
        var output = net.forward(xt, t.to_type(ScalarType.Float32), labels);
        long c = x0.shape[1];
        var prediction = net.Config.LearnSigma ? output.narrow(1, 0, c) : output;
        var target = _prediction switch
        {
            PredictionType.Epsilon => noise,
            PredictionType.Sample => x0,
            _ => _velocityOnNoise.index_select(0, t).reshape(b, 1, 1, 1) * noise
                + _velocityOnSample.index_select(0, t).reshape(b, 1, 1, 1) * x0,
        };
        var perImage = (prediction - target).square().mean([1, 2, 3]);
        var loss = (perImage * _weights.index_select(0, t)).mean();
        if (!net.Config.LearnSigma) return loss;
        var bound = BoundTerm(x0, xt, t, prediction.detach().to_type(ScalarType.Float32),
            output.narrow(1, c, c).to_type(ScalarType.Float32));
        return loss + bound.mean() * (HybridWeight * _schedule.TrainTimesteps);
    }

    /// <summary>
    /// The bound's term at t per image in bits/dim, for the network's (detached) prediction and its v: for t ≥ 1
    /// KL(N(μ̃, β̃_t) ‖ N(μ_θ, Σ)) with μ̃ − μ_θ = c₁(x₀ − x̂₀); for t = 0 the decoder's −log of the mass of x₀'s 8-bit bin
    /// (improved-diffusion's discretized Gaussian, bins of 2/255, the outermost open-ended) — Σ = exp(f log β +
    /// (1 − f) log β̃), f = (v + 1)/2.
    /// </summary>
    public Tensor BoundTerm(Tensor x0, Tensor xt, Tensor t, Tensor prediction, Tensor v)
    {
        long b = x0.shape[0];
        Tensor At(Tensor table) => table.index_select(0, t).reshape(b, 1, 1, 1);
        var (alpha, sigma) = (At(_sqrtAlphaBar), At(_sqrtOneMinusAlphaBar));
        var x0Hat = _prediction switch
        {
            PredictionType.Epsilon => (xt - sigma * prediction) / alpha,
            PredictionType.Sample => prediction,
            _ => alpha * xt - sigma * prediction, // v: x̂₀ = αx_t − σv̂
        };
        var (logPosterior, f) = (At(_logPosterior), (v + 1) / 2);
        var logVariance = f * At(_logBeta) + (1 - f) * logPosterior;
        var error = At(_meanOnSample) * (x0 - x0Hat);
        var kl = 0.5 * (-1 + logVariance - logPosterior + (logPosterior - logVariance).exp()
            + error.square() * (-logVariance).exp());
        var decoder = -DiscretizedLogLikelihood(x0, x0Hat, logVariance);
        var nats = where((t == 0).reshape(b, 1, 1, 1), decoder, kl);
        return nats.mean([1, 2, 3]) / Math.Log(2);
    }

    /// <summary>
    /// log of the mass N(mean, e^{logVariance}) puts on x's 8-bit bin [x − 1/255, x + 1/255], the outermost bins
    /// reaching to ±∞ (Ho et al. 2020, eq. 13).
    /// </summary>
    private static Tensor DiscretizedLogLikelihood(Tensor x, Tensor mean, Tensor logVariance)
    {
        var inverse = (-0.5 * logVariance).exp();
        Tensor Cdf(Tensor z) => 0.5 * (1 + (z / Math.Sqrt(2)).erf());
        var upper = Cdf(inverse * (x - mean + 1.0 / 255));
        var lower = Cdf(inverse * (x - mean - 1.0 / 255));
        const double floor = 1e-12;
        return where(x < -0.999, upper.clamp_min(floor).log(),
            where(x > 0.999, (1 - lower).clamp_min(floor).log(), (upper - lower).clamp_min(floor).log()));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _sqrtAlphaBar.Dispose();
        _sqrtOneMinusAlphaBar.Dispose();
        _weights.Dispose();
        _velocityOnNoise.Dispose();
        _velocityOnSample.Dispose();
        _meanOnSample.Dispose();
        _logPosterior.Dispose();
        _logBeta.Dispose();
    }
}

/// <summary>
/// Rows [<see cref="From"/>, <see cref="From"/> + n) of a global batch of <see cref="Total"/> images.
/// </summary>
public readonly record struct BatchShard(int From, int Total);
