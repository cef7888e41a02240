using System.Diagnostics;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Evaluation.Likelihood;

/// <summary>How the variational bound is estimated.</summary>
public sealed record BoundOptions
{
    /// <summary>
    /// KL terms drawn per image, one uniformly from each of K strata of t = 1 … T−1 and weighted by its stratum's
    /// length, beside the decoder term (t = 0) and the prior, which are always computed: an unbiased estimate of the
    /// whole bound. The strata are spaced geometrically, so the first are single timesteps, where the terms are largest
    /// and change fastest (uniform draws spend most of their variance there). Null: every timestep (the bound's T
    /// terms). At most T − 1.
    /// </summary>
    public int? SampledTimesteps { get; init; }
    /// <summary>
    /// Seed of the forward-process noise and of the sampled timesteps, keyed by image (batch-invariant): the j-th
    /// row of image i (j = t with every timestep; j = 0 for the decoder, then the draws) takes
    /// x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε with ε draw j + 1 of image i of a <see cref="NoiseGenerator"/> of this seed; the
    /// sampled timesteps come from its draw 0.
    /// </summary>
    public ulong Seed { get; init; }
    /// <summary>Network rows per call: pairs (image, timestep), batched across timesteps and images.</summary>
    public int BatchSize { get; init; } = 64;
}

/// <summary>
/// What the bound came to: the total per image, and where its bits lie — the prior term L_T, and per training
/// timestep t the mean over images of its term (t = 0: the decoder's −log p(x₀ | x₁), t ≥ 1: the KL
/// L_t = KL(q(x_{t−1} | x_t, x₀) ‖ p(x_{t−1} | x_t))), all in bits/dim. <see cref="TermDraws"/> counts each term's
/// draws (one per image with every timestep).
/// </summary>
public sealed record BoundResult(LikelihoodEstimate Total, double PriorBitsPerDim, double[] TermBitsPerDim,
    int[] TermDraws, long NetworkRows, TimeSpan Time, bool Discrete);

/// <summary>
/// The variational bound on −log p(x₀) of Ho et al. 2020 (eq. 5) in bits/dim, as improved-diffusion's
/// <c>calc_bpd_loop</c> sums it: L = L_T + Σ_{t≥1} L_t + L_0, with L_T = KL(q(x_T | x₀) ‖ N(0, I)), each L_t the KL
/// between the forward posterior N(μ̃_t(x_t, x₀), β̃_t) and the model's reverse kernel N(μ̃_t(x_t, x̂₀), Σ_t), and L_0
/// the decoder: for 8-bit data the discretized Gaussian's mass on x₀'s bin, for continuous data its density. The
/// model's Σ_t is the variance its config names (fixed_small: β̃_t, fixed_large: β_t; at t = 0 both use β̃₁, as
/// improved-diffusion does, β̃₀ being 0; learned_range: per value, from the network's v). x_t is drawn once per (image, t) from the keyed noise; μ̃ − μ_θ =
/// c₁(x₀ − x̂₀) exactly, so each KL is computed without cancellation. Calls are batched across timesteps.
/// </summary>
public static class VariationalBound
{
    /// <summary>
    /// Measures the bound of <paramref name="model"/> (unconditional: a class model's null label) on
    /// <paramref name="data"/>.
    /// </summary>
    public static BoundResult Evaluate(DiffusionModel model, LikelihoodData data, BoundOptions? options = null,
        IProgress<(long Done, long Total)>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new BoundOptions();
        Likelihoods.CheckModel(model, data);
        if (options.BatchSize < 1)
            throw new DiffusionArgumentException("--batch", $"expected a positive batch, got {options.BatchSize}.");
        var kernel = ReverseKernels.Of(model.Schedule, model.Config.VarianceType);
        if (options.SampledTimesteps is < 1 || options.SampledTimesteps >= kernel.Timesteps)
            throw new DiffusionArgumentException("--timesteps", $"expected 'all' or 1 to {kernel.Timesteps - 1} " +
                $"strata of the model's {kernel.Timesteps} timesteps, got {options.SampledTimesteps}.");
        int T = kernel.Timesteps, perImage = options.SampledTimesteps + 1 ?? T, d = data.Shape.Size;
        bool sampled = options.SampledTimesteps is not null;
        var noise = new NoiseGenerator(options.Seed);
        long pairs = (long)data.Count * perImage;
        int batch = (int)Math.Min(options.BatchSize, pairs);
        using var denoiser = new Denoiser(model, batch, ClassConditions.For(model, []), data.Shape, cancellation);
        var x = new float[batch * d];
        var eps = new float[batch * d];
        var x0 = new float[batch * d];
        var levels = new NoiseLevel[batch];
        var slots = new (int Image, int T, int Weight)[batch];
        var totals = new double[data.Count];
        var termSums = new double[T];
        var termDraws = new int[T];
        double toBits = 1 / (d * Math.Log(2));
        // a sampled KL term stands for its stratum's every timestep
        var edges = sampled ? Strata(perImage - 1, T) : null;
        int[]? draws = null;
        int drawsOf = -1;
        var clock = Stopwatch.StartNew();
        long rows = 0;
        for (long start = 0; start < pairs; start += batch)
        {
            cancellation.ThrowIfCancellationRequested();
            int n = (int)Math.Min(batch, pairs - start);
            for (int k = 0; k < batch; k++)
            {
                // rows past the last pair repeat it (the batch is fixed); their terms are not counted
                long p = Math.Min(start + k, pairs - 1);
                int image = (int)(p / perImage), j = (int)(p % perImage);
                if (sampled && drawsOf != image) (draws, drawsOf) = (Draws(noise, image, edges!), image);
                int t = sampled && j > 0 ? draws![j - 1] : j;
                slots[k] = (image, t, sampled && j > 0 ? edges![j] - edges[j - 1] : 1);
                levels[k] = NoiseLevel.At(model.Schedule, t);
                // x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε, ε draw j + 1 of the image
                var xt = x.AsSpan(k * d, d);
                noise.Fill(xt, image, (uint)(j + 1));
                ForwardProcess.Sample(xt, data.Image(image), xt, levels[k]);
            }
            denoiser.Predict(x, levels, eps, x0);
            rows += batch;
            for (int k = 0; k < n; k++)
            {
                var (image, t, weight) = slots[k];
                var v = denoiser.LearnsVariance ? denoiser.VarianceValues.Slice(k * d, d) : default;
                double bits = Term(kernel, t, data.Image(image), x0.AsSpan(k * d, d), v, data.Discrete) * toBits;
                if (!double.IsFinite(bits))
                    throw new DiffusionException($"The bound's term at t = {t} of image {image} of '{data.Source}' " +
                        $"is {bits}: the model's x̂₀ is not finite there.");
                totals[image] += weight * bits;
                termSums[t] += bits;
                termDraws[t]++;
            }
            progress?.Report((start + n, pairs));
        }
        double priorSum = 0;
        for (int i = 0; i < data.Count; i++)
        {
            double prior = Prior(kernel, data.Image(i)) * toBits;
            totals[i] += prior;
            priorSum += prior;
        }
        var means = termSums.Select((s, t) => termDraws[t] == 0 ? double.NaN : s / termDraws[t]).ToArray();
        return new BoundResult(LikelihoodEstimate.Of(totals), priorSum / data.Count, means, termDraws, rows,
            clock.Elapsed, data.Discrete);
    }

    /// <summary>
    /// The bound's term at t for an image x₀ whose denoised estimate from x_t is x̂₀, in nats: t = 0, the decoder's
    /// −log p(x₀ | x₁) (the mass of x₀'s 8-bit bins when <paramref name="discrete"/>, else the density); t ≥ 1,
    /// KL(N(μ̃, β̃_t) ‖ N(μ_θ, Σ_t)) with μ̃ − μ_θ = c₁(x₀ − x̂₀). Σ_t is the kernel's fixed variance, or per value the
    /// learned one the network's <paramref name="v"/> gives (empty: fixed).
    /// </summary>
    private static double Term(ReverseKernels kernel, int t, ReadOnlySpan<float> x0, ReadOnlySpan<float> x0Hat,
        ReadOnlySpan<float> v, bool discrete)
    {
        double sum = 0, fixedLv = kernel.LogVariance(t);
        bool learned = !v.IsEmpty;
        if (t == 0)
        {
            // the decoder's mean is μ̃₀ = x̂₀ (c₁ = 1, c₂ = 0 at t = 0)
            for (int i = 0; i < x0.Length; i++)
            {
                double lv = learned ? kernel.LearnedLogVariance(0, v[i]) : fixedLv;
                sum -= discrete ? GaussianTerms.DiscretizedLogLikelihood(x0[i], x0Hat[i], lv)
                    : GaussianTerms.LogDensity(x0[i], x0Hat[i], lv);
            }
            return sum;
        }
        double c1 = kernel.MeanOnSample(t), lq = kernel.LogPosteriorVariance(t);
        for (int i = 0; i < x0.Length; i++)
            sum += GaussianTerms.NormalKl(c1 * x0[i], lq, c1 * x0Hat[i],
                learned ? kernel.LearnedLogVariance(t, v[i]) : fixedLv);
        return sum;
    }

    /// <summary>L_T = KL(q(x_T | x₀) ‖ N(0, I)), q(x_T | x₀) = N(√ᾱ_{T−1} x₀, 1 − ᾱ_{T−1}), in nats.</summary>
    private static double Prior(ReverseKernels kernel, ReadOnlySpan<float> x0)
    {
        double ab = kernel.AlphaBar(kernel.Timesteps - 1), logVariance = Math.Log(1 - ab), sum = 0;
        for (int i = 0; i < x0.Length; i++) sum += GaussianTerms.NormalKl(Math.Sqrt(ab) * x0[i], logVariance, 0, 0);
        return sum;
    }

    /// <summary>
    /// K strata of t = 1 … T−1, as edges e₀ = 1 &lt; e₁ &lt; … &lt; e_K = T: geometric, so that the first strata are
    /// single timesteps (computed exactly: the terms are largest and fall fastest there) and the last are wide.
    /// </summary>
    private static int[] Strata(int count, int timesteps)
    {
        var edges = new int[count + 1];
        edges[0] = 1;
        for (int j = 1; j <= count; j++)
        {
            int geometric = (int)Math.Round(Math.Exp(Math.Log(timesteps) * j / count));
            edges[j] = Math.Clamp(geometric, edges[j - 1] + 1, timesteps - (count - j));
        }
        return edges;
    }

    /// <summary>
    /// The K timesteps drawn for <paramref name="image"/>, one uniformly from each stratum of
    /// <paramref name="edges"/>: u = Φ(z) of draw 0 of the image's keyed noise (the x_t take draws 1…).
    /// </summary>
    private static int[] Draws(NoiseGenerator noise, int image, int[] edges)
    {
        var z = new float[edges.Length - 1];
        noise.Fill(z, image, 0);
        var draws = new int[z.Length];
        for (int j = 0; j < draws.Length; j++)
        {
            int width = edges[j + 1] - edges[j];
            draws[j] = edges[j] + Math.Min(width - 1, (int)(GaussianTerms.Cdf(z[j]) * width));
        }
        return draws;
    }
}
