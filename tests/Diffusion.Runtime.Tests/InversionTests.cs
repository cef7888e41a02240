using Diffusion.Runtime.Editing;
using Diffusion.Runtime.Generation;

namespace Diffusion.Runtime.Tests;

public class InversionTests
{
    private static double RoundTripError(Onnx.DiffusionModel model, float[] images, int count, int steps)
    {
        var generator = new ImageGenerator(model);
        var request = new GenerationRequest
        {
            Sampler = "ddim", Steps = steps, Count = count, BatchSize = count, KarrasSigmas = true,
        };
        var latents = DdimInversion.Invert(model, images, count, generator.Grid(request), count);
        var decoded = generator.Generate(request with { InitialNoise = latents }).Images;
        return Math.Sqrt(decoded.Zip(images, (a, b) => (double)(a - b) * (a - b)).Average());
    }

    [Fact]
    public void Ddim_inversion_then_decoding_reproduces_the_input_ever_better_with_steps()
    {
        using var model = Fixtures.Gaussian();
        var images = new float[8 * model.ImageSize];
        new Noise.NoiseGenerator(5).Fill(images, 0, model.ImageSize, 0);
        for (int i = 0; i < images.Length; i++) images[i] = Fixtures.Mean + Fixtures.Std * images[i];
        double e20 = RoundTripError(model, images, 8, 20), e80 = RoundTripError(model, images, 8, 80),
            e320 = RoundTripError(model, images, 8, 320);
        Assert.True(e80 < e20 && e320 < e80, $"round-trip rms {e20}, {e80}, {e320} at 20, 80, 320 steps");
        Assert.True(e320 < 0.02, $"rms {e320} at 320 steps");
        // Inverted latents look like noise: roughly zero mean, unit variance.
        var latents = DdimInversion.Invert(model, images, 8,
            new ImageGenerator(model).Grid(new GenerationRequest { Steps = 50, KarrasSigmas = true }), 8);
        var (mean, std) = Fixtures.Moments(latents);
        Assert.InRange(mean, -0.1, 0.1);
        Assert.InRange(std, 0.85, 1.15);
    }

    [Fact]
    public void Slerp_keeps_the_norm_of_orthogonal_unit_vectors_and_hits_the_ends()
    {
        float[] a = [1, 0, 0], b = [0, 1, 0];
        Assert.Equal(a, DdimInversion.Slerp(a, b, 0));
        var end = DdimInversion.Slerp(a, b, 1);
        Assert.Equal(1, end[1], 6);
        Assert.Equal(0, end[0], 6);
        var mid = DdimInversion.Slerp(a, b, 0.5);
        Assert.Equal(Math.Sqrt(0.5), mid[0], 6);
        Assert.Equal(1, Math.Sqrt(mid.Sum(v => v * v)), 6);
    }
}
