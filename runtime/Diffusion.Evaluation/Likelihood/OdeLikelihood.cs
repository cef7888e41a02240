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
    /// <summary>
    /// Probes per image: each gives its own estimate of the divergence integral along one trajectory.
    /// </summary>
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
    /// <summary>Most ODE slope evaluations for one image before giving up.</summary>
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
/// Jacobian–vector product is a central difference on the network, error O(δ²)
/// (<see cref="OdeOptions.DifferenceStep"/>).
/// 8-bit data are dequantized uniformly within their bins (x̃₀ = x + (u − ½)·2/255) and their bits/dim are
/// (−log p(x̃₀) − d log(2/255))/(d ln 2), an upper bound on the discrete −log P in expectation; continuous data give
/// −log p(x̃₀)/(d ln 2).
/// </summary>
public static class OdeLikelihood
{
    /// <summary>
    /// Measures <paramref name="model"/> (unconditional: a class model's null label) on <paramref name="data"/>.
    /// </summary>
    public static OdeResult Evaluate(DiffusionModel model, LikelihoodData data, OdeOptions? options = null,
        IProgress<(long Done, long Total)>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new OdeOptions();
        Check(options);
        Likelihoods.CheckModel(model, data);
        int k = options.Probes, rowsPerImage = 1 + 2 * k;
        int images = Math.Clamp(options.BatchSize / rowsPerImage, 1, data.Count);
        var schedule = model.Schedule;
        using var run = new Run(model, data, options, images, cancellation);
        var perImage = new double[data.Count];
        var probeSd = new double[data.Count];
        var slopes = new int[data.Count];
        var clock = Stopwatch.StartNew();
        run.Measure(perImage, probeSd, slopes, progress);
        return new OdeResult(LikelihoodEstimate.Of(perImage), probeSd.Average(), slopes.Average(),
            run.Rows, clock.Elapsed, data.Discrete, schedule.SigmaMin, schedule.SigmaMax);
    }

    private static void Check(OdeOptions o)
    {
        if (o.Probes is < 1 or > 64)
            throw new DiffusionArgumentException("--probes", $"expected 1 to 64 probes, got {o.Probes}.");
        if (!(o.RelativeTolerance > 0 && o.RelativeTolerance <= 1))
            throw new DiffusionArgumentException("--rtol",
                $"expected a tolerance in (0, 1], got {o.RelativeTolerance}.");
        if (!(o.AbsoluteTolerance > 0 && o.AbsoluteTolerance <= 1))
            throw new DiffusionArgumentException("--atol",
                $"expected a tolerance in (0, 1], got {o.AbsoluteTolerance}.");
        if (!(o.DifferenceStep > 0 && o.DifferenceStep <= 1))
            throw new DiffusionArgumentException("--fd-step", $"expected δ in (0, 1], got {o.DifferenceStep}.");
        if (o.BatchSize < 1)
            throw new DiffusionArgumentException("--batch", $"expected a positive batch, got {o.BatchSize}.");
        if (o.MaxEvaluations < 1)
            throw new DiffusionArgumentException("MaxEvaluations",
                $"expected a positive number, got {o.MaxEvaluations}.");
    }

    /// <summary>
    /// The buffers of one measurement, allocated once: per image a state of d values of x̃ and K divergence integrals
    /// (one per probe), the seven stages' slopes, and the network rows [x̃, x̃ ± hε₁, …].
    /// </summary>
    private sealed class Run : IDisposable
    {
        /// <summary>
        /// What a slot of the batch holds: nothing (the data are done), an image loaded whose first slope is still to
        /// come, one that got it in this step's first call, or one stepping.
        /// </summary>
        private enum Slot { Empty, Fresh, Started, Active }

        private readonly DiffusionModel _model;
        private readonly LikelihoodData _data;
        private readonly OdeOptions _o;
        private readonly Denoiser _denoiser;
        private readonly int _images, _d, _k, _width, _rowsPerImage;
        private readonly float[] _y, _stage, _rows, _denoised;
        private readonly float[][] _slopes, _probes;
        private readonly NoiseLevel[] _levels;
        private readonly double[] _s, _h, _step;
        private readonly int[] _image;
        private readonly Slot[] _slot;
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
            _slopes = Enumerable.Range(0, DormandPrinceTableau.Stages).Select(_ => new float[images * _width])
                .ToArray();
            _probes = Enumerable.Range(0, _k).Select(_ => new float[images * _d]).ToArray();
            _rows = new float[images * _rowsPerImage * _d];
            _denoised = new float[_rows.Length];
            _levels = new NoiseLevel[images * _rowsPerImage];
            (_s, _h, _step) = (new double[images], new double[images], new double[images]);
            (_image, _slot) = (new int[images], new Slot[images]);
        }

        private Span<float> State(float[] y, int b) => y.AsSpan(b * _width, _width);

        /// <summary>
        /// Measures every image of the data: each slot of the batch integrates one image at its own steps and, when
        /// that image reaches σ_max, takes the next (its first slope rides on the next step's first call), so that no
        /// call is spent on finished images while images remain.
        /// </summary>
        public void Measure(double[] bits, double[] probeSd, int[] slopes, IProgress<(long Done, long Total)>? progress)
        {
            double sEnd = Math.Log(_model.Schedule.SigmaMax);
            int next = 0, done = 0;
            for (int b = 0; b < _images; b++) Load(b, next++);
            Slope(_y, 0, _slopes[0]);
            for (int b = 0; b < _images; b++) (_slot[b], slopes[_image[b]]) = (Slot.Active, 1);
            var tableau = _slopes;
            while (Array.Exists(_slot, v => v != Slot.Empty))
            {
                _cancellation.ThrowIfCancellationRequested();
                for (int j = 1; j < DormandPrinceTableau.Stages; j++)
                {
                    for (int b = 0; b < _images; b++)
                    {
                        var y = State(_stage, b);
                        State(_y, b).CopyTo(y);
                        if (_slot[b] != Slot.Active) continue;
                        for (int m = 0; m < j; m++)
                            if (DormandPrinceTableau.Coefficient(j, m) is var a and not 0)
                                Vec.AddScaled(y, _h[b] * a, State(tableau[m], b));
                        slopes[_image[b]]++;
                    }
                    Slope(_stage, DormandPrinceTableau.Node(j), tableau[j]);
                    // a fresh slot's row in the first call was its own state at its own s: its first slope
                    for (int b = 0; b < _images && j == 1; b++)
                        if (_slot[b] == Slot.Fresh)
                        {
                            State(tableau[1], b).CopyTo(State(tableau[0], b));
                            slopes[_image[b]]++;
                            _slot[b] = Slot.Started;
                        }
                }
                for (int b = 0; b < _images; b++)
                {
                    if (_slot[b] == Slot.Started) { _slot[b] = Slot.Active; continue; }
                    if (_slot[b] != Slot.Active) continue;
                    if (slopes[_image[b]] > _o.MaxEvaluations)
                        throw new DiffusionException("--rtol", $"the likelihood ODE of image {_image[b]} did not " +
                            $"reach σ_max within {_o.MaxEvaluations} evaluations; loosen the tolerances.");
                    double norm = ErrorNorm(b);
                    if (norm <= 1)
                    {
                        State(_stage, b).CopyTo(State(_y, b));
                        State(tableau[^1], b).CopyTo(State(tableau[0], b));
                        _s[b] += _h[b];
                    }
                    double remaining = sEnd - _s[b];
                    if (Math.Abs(remaining) >= 1e-12)
                    {
                        _h[b] = Math.Min(_h[b] * DormandPrinceTableau.StepFactor(norm), remaining);
                        continue;
                    }
                    (bits[_image[b]], probeSd[_image[b]]) = Finish(b, sEnd);
                    progress?.Report((++done, _data.Count));
                    if (next < _data.Count) Load(b, next++);
                    else _slot[b] = Slot.Empty;
                }
            }
        }

        /// <summary>
        /// Puts <paramref name="image"/> into slot <paramref name="b"/> at σ_min: the data point (dequantized when
        /// 8-bit), zero integrals, its probes.
        /// </summary>
        private void Load(int b, int image)
        {
            var noise = new NoiseGenerator(_o.Seed);
            var schedule = _model.Schedule;
            double sStart = Math.Log(schedule.SigmaMin), sEnd = Math.Log(schedule.SigmaMax);
            (_image[b], _slot[b], _s[b], _h[b]) = (image, Slot.Fresh, sStart, (sEnd - sStart) / 20);
            var y = State(_y, b);
            y.Clear();
            var x = y[.._d];
            _data.Image(image).CopyTo(x);
            if (_data.Discrete)
            {
                // uniform dequantization u ~ U(0, 1) per value, u = Φ(z) of draw 1
                var z = State(_stage, b)[.._d];
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

        /// <summary>
        /// f for every slot at s + c·Δs (a slot not stepping: at its own s): dx̃/ds = x̃ − D(x̃) and, per probe,
        /// d(∫∇·f)/ds = d − εᵀ(D(x̃ + hε) − D(x̃ − hε))/2h with the difference step h = δσ, from one network call over
        /// the rows [x̃, x̃ + hε₁, x̃ − hε₁, …].
        /// </summary>
        private void Slope(float[] y, double c, float[] slope)
        {
            for (int b = 0; b < _images; b++)
            {
                double sigma = Math.Exp(_s[b] + (_slot[b] == Slot.Active ? c * _h[b] : 0));
                _step[b] = _o.DifferenceStep * sigma;
                var level = NoiseLevel.OfSigma(_model.Schedule, sigma);
                var x = State(y, b)[.._d];
                int row = b * _rowsPerImage;
                x.CopyTo(Row(row));
                _levels[row] = level;
                for (int p = 0; p < _k; p++)
                {
                    var probe = _probes[p].AsSpan(b * _d, _d);
                    Vec.Axpby(Row(row + 1 + 2 * p), 1, x, _step[b], probe);
                    Vec.Axpby(Row(row + 2 + 2 * p), 1, x, -_step[b], probe);
                    _levels[row + 1 + 2 * p] = _levels[row + 2 + 2 * p] = level;
                }
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
                    f[_d + p] = (float)(_d - jvp / (2 * _step[b]));
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

        /// <summary>
        /// Slot <paramref name="b"/>'s image at σ_max: its bits/dim (the mean of its probes) and their spread.
        /// </summary>
        private (double Bits, double ProbeSd) Finish(int b, double sEnd)
        {
            double logVariance = Math.Log(1 + Math.Exp(2 * sEnd));
            double dequantization = _data.Discrete ? -_d * Math.Log(GaussianTerms.BinWidth) : 0;
            double toBits = 1 / (_d * Math.Log(2));
            var y = State(_y, b);
            double logPrior = 0;
            for (int i = 0; i < _d; i++) logPrior += GaussianTerms.LogDensity(y[i], 0, logVariance);
            var perProbe = new double[_k];
            for (int p = 0; p < _k; p++) perProbe[p] = (-(logPrior + y[_d + p]) + dequantization) * toBits;
            double bits = perProbe.Average();
            if (!double.IsFinite(bits))
                throw new DiffusionException($"The ODE likelihood of image {_image[b]} of '{_data.Source}' is " +
                    $"{bits}: the model's output is not finite along its trajectory.");
            return (bits, _k < 2 ? 0 : Math.Sqrt(perProbe.Sum(v => (v - bits) * (v - bits)) / (_k - 1)));
        }

        public void Dispose() => _denoiser.Dispose();
    }
}
