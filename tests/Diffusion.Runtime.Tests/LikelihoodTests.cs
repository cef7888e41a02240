using Diffusion.Evaluation.Likelihood;
using Diffusion.Runtime;
using Diffusion.ReferenceModels;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Schedules;
using MathNet.Numerics.Distributions;
using Xunit;
using Xunit.Abstractions;

namespace Diffusion.Tests;

/// <summary>
/// Likelihoods on the closed-form Gaussian model, where every quantity is analytic: data per-pixel N(μ, s²), the
/// exact denoiser x̂₀(x_t) = μ + k√ᾱ(x_t − √ᾱμ) with k = s²/(ᾱs² + 1 − ᾱ). Given x₀, the error x₀ − x̂₀ is normal with
/// mean (x₀ − μ)(1 − kᾱ) and variance k²ᾱ(1 − ᾱ), so each term of the bound has a closed-form expectation over the
/// forward noise, computed here from the schedule alone; the ODE maps the data's own density, log N(x; μ, s²) (blurred
/// by σ_min², well under 0.01 bits/dim).
/// </summary>
public class LikelihoodTests(ITestOutputHelper output)
{
    // data well inside [−1, 1], so that 8-bit data are hardly ever clipped to the outermost levels
    private const double Mu = 0, S = 0.25;

    private static GaussianModelSpec Spec(double mu = Mu, string variance = "fixed_small") => Fixtures.Spec() with
    {
        Mean = [(float)mu], Std = [(float)S], Config = new DiffusionConfig { VarianceType = variance },
    };

    private static DiffusionModel Model(double mu = Mu, string variance = "fixed_small") =>
        Fixtures.Load(Spec(mu, variance));
    private static readonly double Ln2 = Math.Log(2);

    private static LikelihoodData Continuous(int count, ulong seed = 99, double mu = Mu, double s = S)
    {
        var shape = new ImageShape(1, 8, 8);
        var images = new float[count * shape.Size];
        new NoiseGenerator(seed).Fill(images, 0, shape.Size, 0);
        for (int i = 0; i < images.Length; i++) images[i] = (float)(mu + s * images[i]);
        return new LikelihoodData(images, count, shape, Discrete: false, "gaussian data");
    }

    private static LikelihoodData EightBit(int count, ulong seed = 99)
    {
        var data = Continuous(count, seed);
        var images = data.Images.Select(v => Pixels.ToModel(Pixels.ToByte(v))).ToArray();
        return data with { Images = images, Discrete = true, Source = "8-bit gaussian data" };
    }

    /// <summary>The data's exact −log p in bits/dim per image: density, or the mass of each 8-bit bin.</summary>
    private static double[] ExactBits(LikelihoodData data)
    {
        var normal = new Normal(Mu, S);
        return Enumerable.Range(0, data.Count).Select(i =>
        {
            double nats = 0;
            foreach (var x in data.Image(i).ToArray())
                nats -= data.Discrete ? Math.Log(BinMass(x, Mu, S)) : normal.DensityLn(x);
            return nats / (data.Shape.Size * Ln2);
        }).ToArray();
    }

    /// <summary>
    /// The bound's expectation over the forward noise for one image, in bits/dim, term by term from the schedule:
    /// [0] the decoder, [t] the KL at t, [T] the prior.
    /// </summary>
    private static double[] AnalyticTerms(float[] x0, bool discrete, NoiseSchedule schedule, bool large)
    {
        int T = schedule.TrainTimesteps;
        var ab = schedule.AlphasCumprod.ToArray();
        var beta = schedule.Betas.ToArray();
        double Posterior(int t) => beta[t] * (1 - (t == 0 ? 1 : ab[t - 1])) / (1 - ab[t]);
        var terms = new double[T + 1];
        foreach (double x in x0)
            for (int t = 0; t < T; t++)
            {
                double k = S * S / (ab[t] * S * S + 1 - ab[t]);
                double errMean = (x - Mu) * (1 - k * ab[t]), errVar = k * k * ab[t] * (1 - ab[t]);
                double model = t == 0 ? Posterior(1) : large ? beta[t] : Posterior(t);
                if (t == 0 && !discrete)
                    terms[0] += 0.5 * Math.Log(2 * Math.PI * model) + (errMean * errMean + errVar) / (2 * model);
                else if (t == 0)
                {
                    // E over the error e ~ N(errMean, errVar) of −log P(bin of x | N(x − e, model)), by the midpoint
                    // rule on ±8 standard deviations
                    const int points = 4000;
                    double sd = Math.Sqrt(errVar), width = 16 * sd / points, sum = 0, sigma = Math.Sqrt(model);
                    for (int q = 0; q < points; q++)
                    {
                        double e = errMean - 8 * sd + (q + 0.5) * width;
                        sum -= Normal.PDF(errMean, sd, e) * width * Math.Log(BinMass(x, x - e, sigma));
                    }
                    terms[0] += sum;
                }
                else
                {
                    double c1 = Math.Sqrt(ab[t - 1]) * beta[t] / (1 - ab[t]), q = Posterior(t);
                    terms[t] += 0.5 * (-1 + Math.Log(model / q) + q / model
                        + c1 * c1 * (errMean * errMean + errVar) / model);
                }
            }
        foreach (double x in x0)
            terms[T] += 0.5 * (-1 - Math.Log(1 - ab[T - 1]) + (1 - ab[T - 1]) + ab[T - 1] * x * x);
        return terms.Select(v => v / (x0.Length * Ln2)).ToArray();
    }

    /// <summary>
    /// The bound per image in bits/dim at the very draws of x_t the estimator takes (<see cref="BoundOptions.Seed"/>),
    /// with the closed-form x̂₀ in double precision.
    /// </summary>
    private static double[] Replayed(LikelihoodData data, NoiseSchedule schedule, bool large, ulong seed)
    {
        int T = schedule.TrainTimesteps, d = data.Shape.Size;
        var ab = schedule.AlphasCumprod.ToArray();
        var beta = schedule.Betas.ToArray();
        double Posterior(int t) => beta[t] * (1 - (t == 0 ? 1 : ab[t - 1])) / (1 - ab[t]);
        var eps = new float[d];
        return Enumerable.Range(0, data.Count).Select(i =>
        {
            var x0 = data.Image(i).ToArray();
            double nats = 0;
            for (int t = 0; t < T; t++)
            {
                new NoiseGenerator(seed).Fill(eps, i, (uint)(t + 1));
                double k = S * S / (ab[t] * S * S + 1 - ab[t]), model = t == 0 ? Posterior(1) : large ? beta[t]
                    : Posterior(t);
                for (int j = 0; j < d; j++)
                {
                    double xt = Math.Sqrt(ab[t]) * x0[j] + Math.Sqrt(1 - ab[t]) * eps[j];
                    double hat = Mu + k * Math.Sqrt(ab[t]) * (xt - Math.Sqrt(ab[t]) * Mu);
                    if (t == 0)
                        nats -= data.Discrete ? Math.Log(BinMass(x0[j], hat, Math.Sqrt(model)))
                            : Normal.PDFLn(hat, Math.Sqrt(model), x0[j]);
                    else
                    {
                        double c1 = Math.Sqrt(ab[t - 1]) * beta[t] / (1 - ab[t]), q = Posterior(t);
                        double diff = c1 * (x0[j] - hat);
                        nats += 0.5 * (-1 + Math.Log(model / q) + q / model + diff * diff / model);
                    }
                }
            }
            foreach (double x in x0) nats += 0.5 * (-1 - Math.Log(1 - ab[T - 1]) + (1 - ab[T - 1]) + ab[T - 1] * x * x);
            return nats / (d * Ln2);
        }).ToArray();
    }

    /// <summary>N(m, σ²)'s mass on x's 8-bit bin, from the tail on the far side of m (exact when small).</summary>
    private static double BinMass(double x, double m, double sigma)
    {
        double lo = x < -0.999 ? double.NegativeInfinity : x - 1 / 255.0;
        double hi = x > 0.999 ? double.PositiveInfinity : x + 1 / 255.0;
        return lo > m ? Normal.CDF(m, sigma, 2 * m - lo) - Normal.CDF(m, sigma, 2 * m - hi)
            : Normal.CDF(m, sigma, hi) - Normal.CDF(m, sigma, lo);
    }

    private static double AnalyticBound(LikelihoodData data, NoiseSchedule schedule, bool large = false) =>
        Enumerable.Range(0, data.Count)
            .Average(i => AnalyticTerms(data.Image(i).ToArray(), data.Discrete, schedule, large).Sum());

    [Theory]
    [InlineData(false, "fixed_small")]
    [InlineData(false, "fixed_large")]
    [InlineData(true, "fixed_small")]
    public void The_bound_equals_its_analytic_value_and_lies_above_the_exact_nll(bool discrete, string variance)
    {
        using var model = Model(variance: variance);
        var data = discrete ? EightBit(48) : Continuous(48);
        var result = VariationalBound.Evaluate(model, data, new BoundOptions { Seed = 3, BatchSize = 500 });
        bool large = variance == "fixed_large";
        double analytic = AnalyticBound(data, model.Schedule, large);
        var replayed = Replayed(data, model.Schedule, large, seed: 3);
        double exact = ExactBits(data).Average();
        var noise = LikelihoodEstimate.Of(result.Total.PerImage.Select((v, i) =>
            v - AnalyticTerms(data.Image(i).ToArray(), data.Discrete, model.Schedule, large).Sum()).ToArray());
        double worst = result.Total.PerImage.Select((v, i) => Math.Abs(v - replayed[i])).Max();
        output.WriteLine($"{variance} discrete={discrete}: bound {result.Total} analytic {analytic:0.00000} exact " +
            $"{exact:0.00000}; prior {result.PriorBitsPerDim:0.0000}, decoder {result.TermBitsPerDim[0]:0.0000}; " +
            $"against the expectation {noise}; worst image against its replayed draws {worst:0.000000}");
        // the same draws of x_t through the closed-form x̂₀: equal to float32's precision
        Assert.True(worst < 1e-3, $"an image's bound is {worst} bits/dim from its closed form");
        // and over the draws, the analytic expectation (Gaussian KLs step by step)
        Assert.True(Math.Abs(noise.BitsPerDim) < 4 * noise.StandardError, $"off the expectation by {noise}");
        Assert.True(result.Total.BitsPerDim > exact, $"the bound {result.Total} lies below the exact NLL {exact}");
        Assert.Equal(48 * 1000, result.NetworkRows);
        Assert.All(result.TermDraws, d => Assert.Equal(48, d));
    }

    [Fact]
    public void Each_term_of_the_bound_is_its_analytic_expectation()
    {
        using var model = Model();
        var data = Continuous(64);
        var result = VariationalBound.Evaluate(model, data, new BoundOptions { Seed = 4, BatchSize = 1000 });
        var analytic = new double[1001];
        for (int i = 0; i < data.Count; i++)
        {
            var terms = AnalyticTerms(data.Image(i).ToArray(), false, model.Schedule, false);
            for (int t = 0; t <= 1000; t++) analytic[t] += terms[t] / data.Count;
        }
        Assert.Equal(analytic[1000], result.PriorBitsPerDim, 1e-9);
        // each term is one draw of x_t per image: within 10 % of its expectation (or 1e-4 bits where it is tiny)
        foreach (int t in new[] { 0, 1, 2, 10, 100, 500, 999 })
            Assert.True(Math.Abs(result.TermBitsPerDim[t] - analytic[t]) < Math.Max(0.1 * Math.Abs(analytic[t]), 1e-4),
                $"t = {t}: {result.TermBitsPerDim[t]} against {analytic[t]}");
    }

    [Fact]
    public void Sampled_timesteps_estimate_the_whole_bound_without_bias()
    {
        using var model = Model();
        var data = Continuous(32);
        double analytic = AnalyticBound(data, model.Schedule);
        var estimates = Enumerable.Range(0, 16).Select(seed => VariationalBound.Evaluate(model, data,
            new BoundOptions { SampledTimesteps = 100, Seed = (ulong)seed, BatchSize = 404 })).ToArray();
        var perImage = estimates.SelectMany(e => e.Total.PerImage).ToArray();
        var pooled = LikelihoodEstimate.Of(perImage);
        // the data's own spread cancels in the difference image by image
        var differences = LikelihoodEstimate.Of(estimates.SelectMany(e =>
            e.Total.PerImage.Select((v, i) =>
                v - AnalyticTerms(data.Image(i).ToArray(), false, model.Schedule, false).Sum()))
            .ToArray());
        output.WriteLine($"sampled: {pooled}; analytic {analytic:0.0000}; difference {differences}");
        Assert.True(Math.Abs(differences.BitsPerDim) < 4 * differences.StandardError + 1e-3,
            $"sampled-timestep estimate off by {differences}");
        Assert.True(differences.StandardError < 0.03, $"too noisy a test: {differences}");
        // the decoder row and 100 draws per image, in full batches
        Assert.All(estimates, e => Assert.Equal(32 * 101, e.NetworkRows));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_ode_likelihood_is_the_datas_exact_log_density(bool discrete)
    {
        using var model = Model();
        var data = discrete ? EightBit(12) : Continuous(12);
        var result = OdeLikelihood.Evaluate(model, data, new OdeOptions { Seed = 2, BatchSize = 36 });
        var exact = ExactBits(data);
        double worst = result.Total.PerImage.Select((v, i) => Math.Abs(v - exact[i])).Max();
        output.WriteLine($"discrete={discrete}: ode {result.Total} exact {exact.Average():0.00000}; worst image " +
            $"|Δ| {worst:0.00000}; {result.EvaluationsPerImage:0} slopes per image, {result.NetworkRows} rows");
        if (!discrete)
            Assert.True(worst < 0.01, $"an image's ODE bits/dim is {worst} from its exact log-density");
        else
        {
            // dequantization: an upper bound of the discrete NLL in expectation; the bins are small beside s
            Assert.True(result.Total.BitsPerDim > exact.Average() - 0.01);
            Assert.Equal(exact.Average(), result.Total.BitsPerDim, 0.02);
        }
        Assert.InRange(result.EvaluationsPerImage, 10, 2000);
    }

    [Fact]
    public void Gaussian_probes_estimate_the_divergence_without_bias()
    {
        using var model = Model();
        var data = Continuous(6);
        var exact = ExactBits(data);
        var result = OdeLikelihood.Evaluate(model, data, new OdeOptions
        {
            Probe = ProbeKind.Gaussian, Probes = 16, Seed = 5, BatchSize = 6 * 33, RelativeTolerance = 1e-4,
            AbsoluteTolerance = 1e-4,
        });
        var differences = LikelihoodEstimate.Of(result.Total.PerImage.Select((v, i) => v - exact[i]).ToArray());
        output.WriteLine($"gaussian probes: {result.Total}, probe sd {result.ProbeStandardDeviation:0.0000}; " +
            $"difference {differences}");
        // a Gaussian probe's estimate spreads (a Rademacher one is exact on this diagonal Jacobian) but centres on it
        Assert.True(result.ProbeStandardDeviation > 1e-3);
        Assert.True(Math.Abs(differences.BitsPerDim) < 4 * differences.StandardError + 0.01,
            $"gaussian-probe estimate off by {differences}");
    }

    [Fact]
    public void A_mismatched_model_scores_worse_by_both_methods()
    {
        using var right = Model();
        using var wrong = Model(mu: 0.25);
        var data = Continuous(8);
        var options = new BoundOptions { BatchSize = 1000 };
        double rightBound = VariationalBound.Evaluate(right, data, options).Total.BitsPerDim;
        double wrongBound = VariationalBound.Evaluate(wrong, data, options).Total.BitsPerDim;
        double rightOde = OdeLikelihood.Evaluate(right, data).Total.BitsPerDim;
        double wrongOde = OdeLikelihood.Evaluate(wrong, data).Total.BitsPerDim;
        output.WriteLine($"bound {rightBound:0.000} vs {wrongBound:0.000}; ode {rightOde:0.000} vs {wrongOde:0.000}");
        // a mean off by s costs ½ nat = 0.72 bits/dim under the exact model
        Assert.True(wrongBound > rightBound + 0.5);
        Assert.True(wrongOde > rightOde + 0.5);
    }

    [Fact]
    public void Results_do_not_depend_on_the_batch()
    {
        using var model = Model();
        var data = EightBit(5);
        var a = VariationalBound.Evaluate(model, data, new BoundOptions { SampledTimesteps = 7, BatchSize = 3 });
        var b = VariationalBound.Evaluate(model, data, new BoundOptions { SampledTimesteps = 7, BatchSize = 35 });
        Assert.Equal(a.Total.PerImage, b.Total.PerImage);
        var c = OdeLikelihood.Evaluate(model, data, new OdeOptions { BatchSize = 3 });
        var d = OdeLikelihood.Evaluate(model, data, new OdeOptions { BatchSize = 15 });
        Assert.Equal(c.Total.PerImage, d.Total.PerImage);
    }
}
