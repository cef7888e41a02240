namespace Diffusion.Runtime.Schedules;

/// <summary>
/// The forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) over T training timesteps: the one source of truth
/// for ᾱ that training and every sampler share. Fractional t interpolates ᾱ linearly between neighbouring
/// timesteps, exactly as the model contract defines a fractional <c>timestep</c>.
/// </summary>
public sealed class NoiseSchedule
{
    private readonly double[] _betas;
    private readonly double[] _alphasCumprod;

    /// <summary>
    /// Builds the schedule from β_0 … β_{T−1}; <paramref name="rescaleZeroTerminalSnr"/> applies Lin et al. 2023, Alg.
    /// 1.
    /// </summary>
    public NoiseSchedule(double[] betas, bool rescaleZeroTerminalSnr = false)
    {
        if (betas.Length < 2)
            throw new ArgumentException("A noise schedule needs at least 2 timesteps.", nameof(betas));
        foreach (var b in betas)
            if (!(b > 0 && b < 1))
                throw new ArgumentException($"Every β must lie in (0, 1); found {b}.", nameof(betas));
        var ab = new double[betas.Length];
        double prod = 1;
        for (int i = 0; i < betas.Length; i++) ab[i] = prod *= 1 - betas[i];
        if (rescaleZeroTerminalSnr) ab = RescaleZeroTerminalSnr(ab);
        _alphasCumprod = ab;
        _betas = new double[ab.Length];
        for (int i = 0; i < ab.Length; i++) _betas[i] = 1 - ab[i] / (i == 0 ? 1 : ab[i - 1]);
    }

    /// <summary>A schedule of a named kind (diffusers' beta_schedule semantics).</summary>
    public static NoiseSchedule Create(BetaScheduleKind kind, int timesteps, double betaStart, double betaEnd,
        bool rescaleZeroTerminalSnr = false) =>
        new(BetaSchedule.Betas(kind, timesteps, betaStart, betaEnd), rescaleZeroTerminalSnr);

    /// <summary>T, the number of training timesteps.</summary>
    public int TrainTimesteps => _alphasCumprod.Length;

    /// <summary>β_t for t = 0 … T−1 (after any rescale).</summary>
    public ReadOnlySpan<double> Betas => _betas;

    /// <summary>ᾱ_t = ∏_{s≤t} (1 − β_s) for t = 0 … T−1.</summary>
    public ReadOnlySpan<double> AlphasCumprod => _alphasCumprod;

    /// <summary>
    /// ᾱ(t) for continuous t ∈ [0, T−1], linear between integer timesteps; t is clamped to that range.
    /// </summary>
    public double AlphaBar(double t)
    {
        if (double.IsNaN(t)) throw new ArgumentException("Timestep is NaN.", nameof(t));
        int last = _alphasCumprod.Length - 1;
        if (t <= 0) return _alphasCumprod[0];
        if (t >= last) return _alphasCumprod[last];
        int i = (int)Math.Floor(t);
        double f = t - i;
        return _alphasCumprod[i] + f * (_alphasCumprod[i + 1] - _alphasCumprod[i]);
    }

    /// <summary>
    /// The continuous t at which ᾱ(t) equals <paramref name="alphaBar"/> (the inverse of <see cref="AlphaBar"/>),
    /// clamped to [0, T−1].
    /// </summary>
    public double Timestep(double alphaBar)
    {
        var ab = _alphasCumprod;
        if (alphaBar >= ab[0]) return 0;
        if (alphaBar <= ab[^1]) return ab.Length - 1;
        int lo = 0, hi = ab.Length - 1; // ab[lo] > alphaBar >= ab[hi]; ᾱ strictly decreases
        while (hi - lo > 1)
        {
            int mid = (lo + hi) >> 1;
            if (ab[mid] > alphaBar) lo = mid; else hi = mid;
        }
        return lo + (ab[lo] - alphaBar) / (ab[lo] - ab[hi]);
    }

    /// <summary>σ(t) = √((1 − ᾱ)/ᾱ), the noise level of x_t/√ᾱ (Karras et al.'s σ).</summary>
    public double Sigma(double t) => NoiseLevel.SigmaOf(AlphaBar(t));

    /// <summary>The t whose σ(t) equals <paramref name="sigma"/>.</summary>
    public double TimestepOfSigma(double sigma) => Timestep(1 / (1 + sigma * sigma));

    /// <summary>The smallest σ of the schedule, σ(0).</summary>
    public double SigmaMin => Sigma(0);

    /// <summary>
    /// The largest σ of the schedule, σ(T−1) (finite even for zero-terminal-SNR schedules: ᾱ is floored at
    /// <see cref="NoiseLevel.MinAlphaBar"/>).
    /// </summary>
    public double SigmaMax => NoiseLevel.SigmaOf(Math.Max(_alphasCumprod[^1], NoiseLevel.MinAlphaBar));

    /// <summary>
    /// Rescales √ᾱ so that the last timestep has zero SNR while the first keeps its value (Lin et al. 2023, Alg. 1).
    /// </summary>
    public static double[] RescaleZeroTerminalSnr(double[] alphasCumprod)
    {
        double first = Math.Sqrt(alphasCumprod[0]), last = Math.Sqrt(alphasCumprod[^1]);
        var result = new double[alphasCumprod.Length];
        for (int i = 0; i < result.Length; i++)
        {
            double s = (Math.Sqrt(alphasCumprod[i]) - last) * first / (first - last);
            result[i] = s * s;
        }
        return result;
    }
}
