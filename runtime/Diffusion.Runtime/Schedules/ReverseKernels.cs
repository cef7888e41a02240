namespace Diffusion.Runtime.Schedules;

/// <summary>
/// The discrete-time reverse process of a schedule, per training timestep t = 0 … T−1 (ᾱ₋₁ = 1): the forward
/// posterior q(x_{t−1} | x_t, x₀) = N(c₁ x₀ + c₂ x_t, β̃_t) with c₁ = √ᾱ_{t−1} β_t/(1 − ᾱ_t),
/// c₂ = √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t), β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t), and the model's kernel
/// p(x_{t−1} | x_t) = N(c₁ x̂₀ + c₂ x_t, Σ_t) with Σ_t = β̃_t (fixed_small) or β_t (fixed_large), Σ₀ = β̃₁ for both
/// (improved-diffusion's clipped log-variance: β̃₀ = 0), or a learned Σ between β̃_t and β_t
/// (<see cref="LearnedLogVariance"/>). The variational bound is written in these (its KL at t is
/// c₁²‖x₀ − x̂₀‖²/2Σ_t plus a constant), and so is the trainer's bound weighting.
/// </summary>
public sealed class ReverseKernels
{
    private readonly double[] _alphaBar, _c1, _logPosterior, _logModel, _logBeta;

    /// <summary>The kernels of <paramref name="schedule"/>; <paramref name="fixedLarge"/>: Σ_t = β_t.</summary>
    public ReverseKernels(NoiseSchedule schedule, bool fixedLarge = false)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        int n = schedule.TrainTimesteps;
        _alphaBar = schedule.AlphasCumprod.ToArray();
        var betas = schedule.Betas;
        _c1 = new double[n];
        _logPosterior = new double[n];
        _logModel = new double[n];
        _logBeta = betas.ToArray().Select(b => Math.Log(b)).ToArray();
        var posterior = new double[n];
        for (int t = 0; t < n; t++)
        {
            double previous = t == 0 ? 1 : _alphaBar[t - 1];
            _c1[t] = Math.Sqrt(previous) * betas[t] / (1 - _alphaBar[t]);
            posterior[t] = betas[t] * (1 - previous) / (1 - _alphaBar[t]);
        }
        for (int t = 0; t < n; t++)
        {
            _logPosterior[t] = Math.Log(t == 0 ? posterior[1] : posterior[t]);
            _logModel[t] = t == 0 ? Math.Log(posterior[1]) : Math.Log(fixedLarge ? betas[t] : posterior[t]);
        }
    }

    /// <summary>The kernels a model's variance_type names.</summary>
    public static ReverseKernels Of(NoiseSchedule schedule, string varianceType) =>
        new(schedule, varianceType == "fixed_large");

    /// <summary>T.</summary>
    public int Timesteps => _alphaBar.Length;

    /// <summary>ᾱ_t.</summary>
    public double AlphaBar(int t) => _alphaBar[t];

    /// <summary>c₁, the posterior mean's weight on x₀ (1 at t = 0).</summary>
    public double MeanOnSample(int t) => _c1[t];

    /// <summary>log β̃_t, the forward posterior's log-variance (log β̃₁ at t = 0).</summary>
    public double LogPosteriorVariance(int t) => _logPosterior[t];

    /// <summary>log Σ_t, the model kernel's log-variance (a fixed variance).</summary>
    public double LogVariance(int t) => _logModel[t];

    /// <summary>
    /// log Σ_t of a learned variance (variance_type learned_range) whose network says <paramref name="v"/>:
    /// f log β_t + (1 − f) log β̃_t with f = (v + 1)/2 and β̃ clipped at t = 0 (improved-diffusion's).
    /// </summary>
    public double LearnedLogVariance(int t, double v)
    {
        double f = (v + 1) / 2;
        return f * _logBeta[t] + (1 - f) * _logPosterior[t];
    }
}
