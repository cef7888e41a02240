using System.Diagnostics;
using System.Numerics.Tensors;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Evaluation.Likelihood;

/// <summary>The probe vectors of the Hutchinson–Skilling trace estimator.</summary>
public enum ProbeKind
{
    /// <summary>Entries ±1 with equal probability (the lower-variance choice; exact for a diagonal Jacobian).</summary>
    Rademacher,
    /// <summary>Standard normal entries.</summary>
    Gaussian,
}

/// <summary>How the probability-flow ODE's likelihood is estimated.</summary>
public sealed record OdeOptions
{
    /// <summary>Probes per image: each gives its own estimate of the divergence integral along one trajectory.</summary>
    public int Probes { get; init; } = 1;
    /// <summary>The probes' distribution.</summary>
    public ProbeKind Probe { get; init; } = ProbeKind.Rademacher;
    /// <summary>Relative tolerance of the Dormand–Prince steps (Song et al. 2021 use 1e-5).</summary>
    public double RelativeTolerance { get; init; } = 1e-5;
    /// <summary>Absolute tolerance of the steps (per value of x̃; per dimension of the divergence integrals).</summary>
    public double AbsoluteTolerance { get; init; } = 1e-5;
    /// <summary>
    /// δ of the central difference J_D ε ≈ (D(x̃ + hε) − D(x̃ − hε))/2h, with h = δσ: the perturbation is δ times the
    /// noise level the denoiser is at (δ·√(1 − ᾱ) in the network's own input x = αx̃).
    /// </summary>
    public double DifferenceStep { get; init; } = 1e-2;
    /// <summary>Seed of the probes and the dequantization noise (keyed by image: batch-invariant).</summary>
    public ulong Seed { get; init; }
    /// <summary>Network rows per call: images × (1 + 2·probes).</summary>
    public int BatchSize { get; init; } = 48;
    /// <summary>Most ODE slope evaluations for one batch of images before giving up.</summary>
    public int MaxEvaluations { get; init; } = 20_000;
}

/// <summary>
/// What the ODE likelihood came to: bits/dim per image (the mean of its probes), the mean over images of the probes'
/// standard deviation within an image (how much of the spread the trace estimator adds), and the cost: ODE slope
/// evaluations per image (each one network row for D plus two per probe) and network rows in all.
/// </summary>
public sealed record OdeResult(LikelihoodEstimate Total, double ProbeStandardDeviation, double EvaluationsPerImage,
    long NetworkRows, TimeSpan Time, bool Discrete, double SigmaMin, double SigmaMax);

/// <summary>
/// The likelihood of the probability-flow ODE (Song et al. 2021, §D.2) in Karras et al.'s variables: x̃ = x/α,
/// s = log σ, dx̃/ds = f = x̃ − D(x̃, eˢ). Along the flow d log p/ds = −∇·f, so
/// log p₀(x̃₀) = log p_T(x̃_T) + ∫_{s_min}^{s_max} ∇·f ds with ∇·f = d − tr ∂D/∂x̃, the prior N(0, I) on x_T being
/// N(0, (1 + σ_max²) I) on x̃_T. The ODE and the integrals run together through adaptive Dormand–Prince (per image)
/// from σ_min = σ(t = 0), where x̃₀ is the data point, to σ_max = σ(T − 1). tr ∂D/∂x̃ is the Hutchinson–Skilling
/// estimate εᵀ(∂D/∂x̃)ε with ε fixed per image and probe along the trajectory; an ONNX graph has no autograd, so the
/// Jacobian–vector product is a central difference on the network, error O(δ²) (<see cref="OdeOptions.DifferenceStep"/>).
/// 8-bit data are dequantized uniformly within their bins (x̃₀ = x + (u − ½)·2/255) and their bits/dim are
/// (−log p(x̃₀) − d log(2/255))/(d ln 2), an upper bound on the discrete −log P in expectation; continuous data give
/// −log p(x̃₀)/(d ln 2).
/// </summary>
public static class OdeLikelihood
{
    /// <summary>Measures <paramref name="model"/> (unconditional: a class model's null label) on <paramref name="data"/>.</summary>
    public static OdeResult Evaluate(DiffusionModel model, LikelihoodData data, OdeOptions? options = null,
        IProgress<(long Done, long Total)>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        options ??= new OdeOptions();
        Check(options);
        Likelihoods.CheckModel(model, data);
        int k = options.Probes, rowsPerImage = 1 + 2 * k;
        int images = Math.Clamp(options.BatchSize / rowsPerImage, 1, data.Count);
        var schedule = model.Schedule;
        var run = new Run(model, data, options, images, cancellation);
        var perImage = new double[data.Count];
        double probeSd = 0, evaluations = 0;
        var clock = Stopwatch.StartNew();
        for (int first = 0; first < data.Count; first += images)
        {
            int n = Math.Min(images, data.Count - first);
            var (bits, sd, slopes) = run.Batch(first, n);
            for (int b = 0; b < n; b++)
            {
                perImage[first + b] = bits[b];
                probeSd += sd[b];
                evaluations += slopes[b];
            }
            progress?.Report((first + n, data.Count));
        }
        run.Dispose();
        return new OdeResult(LikelihoodEstimate.Of(perImage), probeSd / data.Count, evaluations / data.Count,
            run.Rows, clock.Elapsed, data.Discrete, schedule.SigmaMin, schedule.SigmaMax);
    }

    private static void Check(OdeOptions o)
    {
        if (o.Probes is < 1 or > 64)
            throw new DiffusionArgumentException("--probes", $"expected 1 to 64 probes, got {o.Probes}.");
        if (!(o.RelativeTolerance > 0 && o.RelativeTolerance <= 1))
            throw new DiffusionArgumentException("--rtol", $"expected a tolerance in (0, 1], got {o.RelativeTolerance}.");
        if (!(o.AbsoluteTolerance > 0 && o.AbsoluteTolerance <= 1))
            throw new DiffusionArgumentException("--atol", $"expected a tolerance in (0, 1], got {o.AbsoluteTolerance}.");
        if (!(o.DifferenceStep > 0 && o.DifferenceStep <= 1))
            throw new DiffusionArgumentException("--fd-step", $"expected δ in (0, 1], got {o.DifferenceStep}.");
        if (o.BatchSize < 1)
            throw new DiffusionArgumentException("--batch", $"expected a positive batch, got {o.BatchSize}.");
        if (o.MaxEvaluations < 1)
            throw new DiffusionArgumentException("MaxEvaluations", $"expected a positive number, got {o.MaxEvaluations}.");
    }

    /// <summary>
    /// The buffers of one measurement, allocated once: per image a state of d values of x̃ and K divergence integrals
    /// (one per probe), the seven stages' slopes, and the network rows [x̃, x̃ ± hε₁, …].
    /// </summary>
    private sealed class Run : IDisposable
    {
        private readonly DiffusionModel _model;
        private readonly LikelihoodData _data;
        private readonly OdeOptions _o;
        private readonly Denoiser _denoiser;
        private readonly int _images, _d, _k, _width, _rowsPerImage;
        private readonly float[] _y, _stage, _rows, _denoised;
        private readonly float[][] _slopes, _probes;
        private readonly NoiseLevel[] _levels;
        private readonly double[] _s, _h, _sigma;
        private readonly CancellationToken _cancellation;

        public long Rows { get; private set; }

        public Run(DiffusionModel model, LikelihoodData data, OdeOptions o, int images, CancellationToken cancellation)
        {
            (_model, _data, _o, _images, _cancellation) = (model, data, o, images, cancellation);
            (_d, _k) = (data.Shape.Size, o.Probes);
            _width = _d + _k;
            _rowsPerImage = 1 + 2 * _k;
            _denoiser = new Denoiser(model, images * _rowsPerImage, ClassConditions.For(model, []), data.Shape,
                cancellation);
            _y = new float[images * _width];
            _stage = new float[images * _width];
            _slopes = Enumerable.Range(0, DormandPrinceTableau.Stages).Select(_ => new float[images * _width]).ToArray();
            _probes = Enumerable.Range(0, _k).Select(_ => new float[images * _d]).ToArray();
            _rows = new float[images * _rowsPerImage * _d];
            _denoised = new float[_rows.Length];
            _levels = new NoiseLevel[images * _rowsPerImage];
            (_s, _h, _sigma) = (new double[images], new double[images], new double[images]);
        }

        private Span<float> State(float[] y, int b) => y.AsSpan(b * _width, _width);

        /// <summary>Images first … first + n − 1: their bits/dim, probe spread, and slope evaluations each.</summary>
        public (double[] Bits, double[] ProbeSd, int[] Slopes) Batch(int first, int n)
        {
            var schedule = _model.Schedule;
            double sStart = Math.Log(schedule.SigmaMin), sEnd = Math.Log(schedule.SigmaMax);
            var noise = new NoiseGenerator(_o.Seed);
            for (int b = 0; b < _images; b++)
            {
                // rows past the last image repeat it (the batch is fixed) and are not counted
                int image = first + Math.Min(b, n - 1);
                var y = State(_y, b);
                y.Clear();
                var x = y[.._d];
                _data.Image(image).CopyTo(x);
                if (_data.Discrete)
                {
                    // uniform dequantization u ~ U(0, 1) per value, u = Φ(z) of draw 1
                    var z = _stage.AsSpan(0, _d);
                    noise.Fill(z, image, 1);
                    for (int i = 0; i < _d; i++)
                        x[i] += (float)((GaussianTerms.Cdf(z[i]) - 0.5) * GaussianTerms.BinWidth);
                }
                for (int p = 0; p < _k; p++)
                {
                    var probe = _probes[p].AsSpan(b * _d, _d);
                    noise.Fill(probe, image, (uint)(2 + p));
                    if (_o.Probe == ProbeKind.Rademacher)
                        for (int i = 0; i < _d; i++) probe[i] = probe[i] < 0 ? -1 : 1;
                }
            }
            Array.Fill(_s, sStart);
            Array.Fill(_h, (sEnd - sStart) / 20);
            var slopes = new int[_images];
            Slope(_y, 0, _slopes[0], slopes);
            int evaluations = 1;
            var tableau = _slopes;
            while (Array.Exists(_h, v => v != 0))
            {
                _cancellation.ThrowIfCancellationRequested();
                if (evaluations > _o.MaxEvaluations)
                    throw new DiffusionException("--rtol", $"the likelihood ODE did not reach σ_max within " +
                        $"{_o.MaxEvaluations} evaluations; loosen the tolerances.");
                for (int j = 1; j < DormandPrinceTableau.Stages; j++)
                {
                    for (int b = 0; b < _images; b++)
                    {
                        var y = State(_stage, b);
                        State(_y, b).CopyTo(y);
                        for (int m = 0; m < j; m++)
                            if (DormandPrinceTableau.Coefficient(j, m) is var a and not 0)
                                Vec.AddScaled(y, _h[b] * a, State(tableau[m], b));
                    }
                    Slope(_stage, DormandPrinceTableau.Node(j), tableau[j], slopes);
                    evaluations++;
                }
                for (int b = 0; b < _images; b++)
                {
                    if (_h[b] == 0) continue;
                    double norm = ErrorNorm(b);
                    if (norm <= 1)
                    {
                        State(_stage, b).CopyTo(State(_y, b));
                        State(tableau[^1], b).CopyTo(State(tableau[0], b));
                        _s[b] += _h[b];
                    }
                    double remaining = sEnd - _s[b];
                    _h[b] = Math.Abs(remaining) < 1e-12 ? 0
                        : Math.Min(_h[b] * DormandPrinceTableau.StepFactor(norm), remaining);
                }
            }
            return Finish(first, n, sEnd, slopes);
        }

        /// <summary>
        /// f for every image at s + c·h: dx̃/ds = x̃ − D(x̃) and, per probe, d(∫∇·f)/ds = d − εᵀ(D(x̃ + hε) −
        /// D(x̃ − hε))/2h, from one network call over the rows [x̃, x̃ + hε₁, x̃ − hε₁, …].
        /// </summary>
        private void Slope(float[] y, double c, float[] slope, int[] slopes)
        {
            for (int b = 0; b < _images; b++)
            {
                double sigma = Math.Exp(_s[b] + c * _h[b]);
                _sigma[b] = _o.DifferenceStep * sigma;
                var level = NoiseLevel.OfSigma(_model.Schedule, sigma);
                var x = State(y, b)[.._d];
                int row = b * _rowsPerImage;
                x.CopyTo(Row(row));
                _levels[row] = level;
                for (int p = 0; p < _k; p++)
                {
                    var probe = _probes[p].AsSpan(b * _d, _d);
                    Vec.Axpby(Row(row + 1 + 2 * p), 1, x, _sigma[b], probe);
                    Vec.Axpby(Row(row + 2 + 2 * p), 1, x, -_sigma[b], probe);
                    _levels[row + 1 + 2 * p] = _levels[row + 2 + 2 * p] = level;
                }
                if (_h[b] != 0) slopes[b]++;
            }
            _denoiser.Denoise(_rows, _levels, _denoised);
            Rows += _levels.Length;
            for (int b = 0; b < _images; b++)
            {
                int row = b * _rowsPerImage;
                var f = State(slope, b);
                Vec.Axpby(f[.._d], 1, State(y, b)[.._d], -1, Denoised(row));
                for (int p = 0; p < _k; p++)
                {
                    var probe = _probes[p].AsSpan(b * _d, _d);
                    double jvp = TensorPrimitives.Dot(probe, Denoised(row + 1 + 2 * p))
                        - (double)TensorPrimitives.Dot(probe, Denoised(row + 2 + 2 * p));
                    f[_d + p] = (float)(_d - jvp / (2 * _sigma[b]));
                }
            }
        }

        private Span<float> Row(int r) => _rows.AsSpan(r * _d, _d);
        private ReadOnlySpan<float> Denoised(int r) => _denoised.AsSpan(r * _d, _d);

        /// <summary>
        /// The scaled RMS of the local error estimate, the larger of x̃'s (atol + rtol·|x̃| per value) and the
        /// integrals' (atol·d + rtol·|∫| each: atol per dimension).
        /// </summary>
        private double ErrorNorm(int b)
        {
            double x = 0, integrals = 0;
            var y = State(_y, b);
            var next = State(_stage, b);
            for (int i = 0; i < _width; i++)
            {
                double e = 0;
                for (int m = 0; m < DormandPrinceTableau.Stages; m++)
                    if (DormandPrinceTableau.ErrorWeight(m) is var w and not 0) e += w * _slopes[m][b * _width + i];
                e *= _h[b];
                double scale = i < _d ? _o.AbsoluteTolerance : _o.AbsoluteTolerance * _d;
                scale += _o.RelativeTolerance * Math.Max(Math.Abs(y[i]), Math.Abs(next[i]));
                if (i < _d) x += (e / scale) * (e / scale); else integrals += (e / scale) * (e / scale);
            }
            return Math.Max(Math.Sqrt(x / _d), Math.Sqrt(integrals / _k));
        }

        private (double[] Bits, double[] ProbeSd, int[] Slopes) Finish(int first, int n, double sEnd, int[] slopes)
        {
            double variance = 1 + Math.Exp(2 * sEnd), logVariance = Math.Log(variance);
            double dequantization = _data.Discrete ? -_d * Math.Log(GaussianTerms.BinWidth) : 0;
            double toBits = 1 / (_d * Math.Log(2));
            var bits = new double[n];
            var sd = new double[n];
            for (int b = 0; b < n; b++)
            {
                var y = State(_y, b);
                double logPrior = 0;
                for (int i = 0; i < _d; i++) logPrior += GaussianTerms.LogDensity(y[i], 0, logVariance);
                var perProbe = new double[_k];
                for (int p = 0; p < _k; p++) perProbe[p] = (-(logPrior + y[_d + p]) + dequantization) * toBits;
                bits[b] = perProbe.Average();
                sd[b] = _k < 2 ? 0 : Math.Sqrt(perProbe.Sum(v => (v - bits[b]) * (v - bits[b])) / (_k - 1));
                if (!double.IsFinite(bits[b]))
                    throw new DiffusionException($"The ODE likelihood of image {first + b} of '{_data.Source}' " +
                        $"is {bits[b]}: the model's output is not finite along its trajectory.");
            }
            return (bits, sd, slopes[..n]);
        }

        public void Dispose() => _denoiser.Dispose();
    }
}
