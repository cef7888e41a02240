using Diffusion.Runtime.Generation;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// Inpainting by replacement on the closed-form Gaussian model (independent pixels: the unknown ones must still be N(μ,
/// s²)).
/// </summary>
public class InpaintingTests
{
    private static (float[] Known, float[] Mask) LeftHalfKnown(int count, int size)
    {
        var known = new float[count * size];
        var mask = new float[count * size];
        for (int i = 0; i < known.Length; i++)
        {
            bool left = i % 8 < 4; // 8×8 images: columns 0–3 known
            mask[i] = left ? 1 : 0;
            known[i] = left ? 0.9f - (i % 13) * 0.1f : 123f; // unknown pixels' values must never leak
        }
        return (known, mask);
    }

    [Theory]
    [InlineData("ddpm", 50, false)]
    [InlineData("ddim", 50, false)]
    [InlineData("dpm++2m", 20, true)]
    [InlineData("unipc", 20, true)]
    [InlineData("heun", 10, true)]
    [InlineData("pc", 20, false)]
    [InlineData("dpm++2m-sde", 20, false)]
    [InlineData("dpm++3m-sde", 20, true)]
    [InlineData("euler-ancestral", 20, false)]
    public void Known_pixels_are_kept_bit_exact(string sampler, int steps, bool karras)
    {
        using var model = Fixtures.Gaussian();
        var (known, mask) = LeftHalfKnown(6, model.ImageSize);
        var r = new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = sampler, Steps = steps, KarrasSigmas = karras, Count = 6, BatchSize = 4, Seed = 2,
            KnownImages = known, Mask = mask,
        });
        for (int i = 0; i < known.Length; i++)
        {
            if (mask[i] == 1) Assert.Equal(known[i], r.Images[i]);
            else Assert.InRange(r.Images[i], -3f, 4f);
        }
    }

    [Fact]
    public void The_unknown_region_has_the_data_distribution()
    {
        using var model = Fixtures.Gaussian();
        var (known, mask) = LeftHalfKnown(2048, model.ImageSize);
        var r = new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "dpm++2m", Steps = 40, KarrasSigmas = true, Count = 2048, BatchSize = 512, Seed = 3,
            KnownImages = known, Mask = mask,
        });
        var unknown = r.Images.Where((_, i) => mask[i] == 0).ToArray();
        var (mean, std) = Fixtures.Moments(unknown);
        Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
        Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
    }

    [Fact]
    public void Repaint_resampling_repeats_each_step_and_still_keeps_known_pixels()
    {
        using var model = Fixtures.Gaussian();
        // Repeating an ancestral step converges to that step's own fixed point, so the grid must be fine (1000 steps)
        // for the unknown region to keep the data distribution within tolerance.
        var (known, mask) = LeftHalfKnown(512, model.ImageSize);
        GenerationResult Run(int jumps) => new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "ddpm", Steps = 1000, Count = 512, BatchSize = 512, Seed = 4, KnownImages = known, Mask = mask,
            Options = new Samplers.SamplerOptions { Resampling = jumps },
        });
        var plain = Run(1);
        var resampled = Run(4);
        Assert.Equal(1000, plain.NetworkCalls);
        Assert.Equal(999 * 4 + 1, resampled.NetworkCalls); // every step four times, the last (to σ = 0) once
        for (int i = 0; i < known.Length; i++) if (mask[i] == 1) Assert.Equal(known[i], resampled.Images[i]);
        Assert.NotEqual(plain.Images, resampled.Images);
        var (mean, std) = Fixtures.Moments(resampled.Images.Where((_, i) => mask[i] == 0).ToArray());
        Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
        Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
        var e = Assert.Throws<DiffusionArgumentException>(() => new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "dpm++2m", Steps = 5, Count = 512, KnownImages = known, Mask = mask,
            Options = new Samplers.SamplerOptions { Resampling = 2 },
        }));
        Assert.Equal("Resampling", e.Parameter);
        Assert.Contains("ddim", e.Problem); // the samplers that do resample
    }

    /// <summary>
    /// The known region brought to each level with x_T (diffusers' way) instead of fresh draws: the kept pixels are
    /// still exact and, the model's pixels being independent, the others still N(μ, s²); only inpainting takes it.
    /// </summary>
    [Theory]
    [InlineData("ddpm", 1000, false)] // grids as the tests above, fine enough for the moments' tolerance
    [InlineData("dpm++2m", 40, true)]
    public void Known_pixels_noised_with_the_initial_noise_are_kept_and_the_rest_sampled(string sampler, int steps,
        bool karras)
    {
        using var model = Fixtures.Gaussian();
        var (known, mask) = LeftHalfKnown(512, model.ImageSize);
        var generator = new ImageGenerator(model);
        var request = new GenerationRequest
        {
            Sampler = sampler, Steps = steps, KarrasSigmas = karras, Count = 512, BatchSize = 512, Seed = 4,
            KnownImages = known, Mask = mask, KnownImageNoise = Editing.KnownImageNoise.Initial,
        };
        var r = generator.Generate(request);
        for (int i = 0; i < known.Length; i++) if (mask[i] == 1) Assert.Equal(known[i], r.Images[i]);
        var (mean, std) = Fixtures.Moments(r.Images.Where((_, i) => mask[i] == 0).ToArray());
        Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
        Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
        var e = Assert.Throws<DiffusionArgumentException>(() => generator.Generate(request with
        {
            KnownImages = null, Mask = null,
        }));
        Assert.Equal("KnownImageNoise", e.Parameter);
        Assert.Equal("KnownImageNoise", Assert.Throws<DiffusionArgumentException>(() => generator.Generate(
            request with { KnownImageNoise = (Editing.KnownImageNoise)7 })).Parameter);
    }

    [Fact]
    public void Bad_masks_and_adaptive_solvers_are_refused()
    {
        using var model = Fixtures.Gaussian();
        var (known, mask) = LeftHalfKnown(2, model.ImageSize);
        var generator = new ImageGenerator(model);
        var request = new GenerationRequest
        {
            Sampler = "ddim", Steps = 5, Count = 2, KnownImages = known, Mask = mask,
        };
        var grey = (float[])mask.Clone();
        grey[3] = 0.5f;
        Assert.Contains("binary",
            Assert.Throws<DiffusionException>(() => generator.Generate(request with { Mask = grey })).Message);
        Assert.Contains("same size",
            Assert.Throws<DiffusionException>(() => generator.Generate(request with { Mask = mask[..64] })).Message);
        Assert.Equal("Sampler",
            Assert.Throws<DiffusionArgumentException>(() =>
                generator.Generate(request with { Sampler = "rk45" })).Parameter);
        Assert.Equal("Mask",
            Assert.Throws<DiffusionArgumentException>(() =>
                generator.Generate(request with { Mask = null })).Parameter);
    }
}
