using Diffusion.Evaluation.Likelihood;
using Diffusion.ReferenceModels;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Schedules;
using Xunit;

namespace Diffusion.Tests;

/// <summary>
/// Learned variances (variance_type learned_range: the network outputs v after its prediction,
/// Σ = exp(f log β + (1 − f) log β̃), f = (v + 1)/2). The closed-form Gaussian model with a constant v is the anchor:
/// v = −1 is fixed_small's Σ = β̃ and v = +1 fixed_large's Σ = β, so DDPM and the variational bound must give what
/// the fixed variances give; every other sampler reads the prediction alone.
/// </summary>
public class LearnedVarianceTests
{
    private static GaussianModelSpec Spec(float? v, string variance = "fixed_small") => Fixtures.Spec() with
    {
        Mean = [0.1f], Std = [0.25f], Config = new DiffusionConfig { VarianceType = variance },
        LearnedVariance = v,
    };

    private static float[] Sample(GaussianModelSpec spec, string sampler, float guidance = 1)
    {
        using var model = Fixtures.Load(spec);
        return new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = sampler, Steps = 25, Count = 6, BatchSize = 3, Seed = 5, Guidance = guidance,
        }).Images;
    }

    [Fact]
    public void Ddpm_with_v_at_its_ends_is_ddpm_with_the_fixed_variances()
    {
        var small = Sample(Spec(null), "ddpm");
        var large = Sample(Spec(null, "fixed_large"), "ddpm");
        Assert.True(small.Zip(large, (a, b) => Math.Abs(a - b)).Max() > 1e-3, "the two variances should differ");
        AssertClose(small, Sample(Spec(-1f), "ddpm"), 2e-5f);
        AssertClose(large, Sample(Spec(1f), "ddpm"), 2e-5f);
        // Between them, the noise scale lies between theirs: v = 0 gives σ = √(β̃β), the geometric mean.
        var middle = Sample(Spec(0f), "ddpm");
        var smallSpread = Spread(small, Sample(Spec(-1f), "ddim"));
        var middleSpread = Spread(middle, Sample(Spec(-1f), "ddim"));
        Assert.InRange(middleSpread, smallSpread, Spread(large, Sample(Spec(-1f), "ddim")));
        // ddpm-large keeps β whatever the network says.
        AssertClose(large, Sample(Spec(-1f), "ddpm-large"), 2e-5f);
    }

    [Fact]
    public void Other_samplers_read_the_prediction_alone()
    {
        foreach (var sampler in new[] { "ddim", "dpm++2m", "euler", "unipc" })
            Assert.Equal(Sample(Spec(null), sampler), Sample(Spec(0.3f), sampler));
    }

    [Fact]
    public void Guidance_combines_the_predictions_and_takes_v_from_the_conditional_side()
    {
        var conditional = Fixtures.Spec() with
        {
            ClassMeans = [[-0.4f], [0.5f], [0f]], Std = [0.25f], LearnedVariance = 1f,
        };
        var plain = conditional with
        {
            LearnedVariance = null, Config = new DiffusionConfig { VarianceType = "fixed_large" },
        };
        using var a = Fixtures.Load(conditional);
        using var b = Fixtures.Load(plain);
        var request = new GenerationRequest
        {
            Sampler = "ddpm", Steps = 20, Count = 4, BatchSize = 4, Seed = 2, Guidance = 3, ClassLabels = [1],
        };
        AssertClose(new ImageGenerator(b).Generate(request).Images, new ImageGenerator(a).Generate(request).Images,
            2e-5f);
    }

    [Fact]
    public void The_bound_with_v_at_its_ends_is_the_bound_with_the_fixed_variances()
    {
        var shape = new ImageShape(1, 8, 8);
        var images = new float[20 * shape.Size];
        new NoiseGenerator(4).Fill(images, 0, shape.Size, 0);
        for (int i = 0; i < images.Length; i++) images[i] = Pixels.ToModel(Pixels.ToByte(0.1f + 0.25f * images[i]));
        var data = new LikelihoodData(images, 20, shape, Discrete: true, "8-bit gaussian data");
        var options = new BoundOptions { Seed = 1, BatchSize = 250, SampledTimesteps = 30 };
        BoundResult Bound(GaussianModelSpec spec)
        {
            using var model = Fixtures.Load(spec);
            return VariationalBound.Evaluate(model, data, options);
        }
        var small = Bound(Spec(null));
        var learnedSmall = Bound(Spec(-1f));
        Assert.Equal(small.Total.BitsPerDim, learnedSmall.Total.BitsPerDim, 1e-6);
        Assert.Equal(small.PriorBitsPerDim, learnedSmall.PriorBitsPerDim, 12);
        // v = +1 is β_t for every KL term; the decoder's (t = 0) max is log β₀ where fixed_large clips to β̃₁.
        var large = Bound(Spec(null, "fixed_large"));
        var learnedLarge = Bound(Spec(1f));
        for (int t = 1; t < large.TermBitsPerDim.Length; t++)
            if (large.TermDraws[t] > 0) Assert.Equal(large.TermBitsPerDim[t], learnedLarge.TermBitsPerDim[t], 1e-6);
        Assert.NotEqual(large.TermBitsPerDim[0], learnedLarge.TermBitsPerDim[0], 3);
        // v = 0 is a third variance, √(β̃β): a third bound, the same prior.
        var middle = Bound(Spec(0f));
        Assert.NotEqual(small.Total.BitsPerDim, middle.Total.BitsPerDim, 3);
        Assert.NotEqual(large.Total.BitsPerDim, middle.Total.BitsPerDim, 3);
        Assert.Equal(small.PriorBitsPerDim, middle.PriorBitsPerDim, 12);
    }

    [Fact]
    public void Output_channels_must_match_the_variance_type_in_one_line()
    {
        // a learned_range config on a C-channel output
        var plain = GaussianModel.Build(Spec(null) with
        {
            Config = new DiffusionConfig { VarianceType = "learned_range" },
        });
        var e = Assert.Throws<DiffusionException>(() => DiffusionModel.Load(plain, "plain.onnx"));
        Assert.Contains("needs 2 (the prediction, then v)", e.Message);
        // a 2C output whose config says fixed_small
        var learned = GaussianModel.Build(Spec(-1f) with { WithMetadata = false });
        var config = new DiffusionConfig { SampleSize = [8, 8], InChannels = 1 };
        e = Assert.Throws<DiffusionException>(() => DiffusionModel.Load(learned, "learned.onnx",
            new ModelOptions { Config = config }));
        Assert.Contains("needs variance_type learned_range", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("fixed_small, fixed_large or learned_range", Assert.Throws<DiffusionException>(() =>
            new DiffusionConfig { VarianceType = "learned" }.Validate("c.json")).Message);
    }

    private static double Spread(float[] a, float[] b) =>
        Math.Sqrt(a.Zip(b, (x, y) => (double)(x - y) * (x - y)).Average());

    private static void AssertClose(float[] expected, float[] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = expected.Zip(actual, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(worst <= tolerance, $"max |Δ| = {worst}");
    }
}
