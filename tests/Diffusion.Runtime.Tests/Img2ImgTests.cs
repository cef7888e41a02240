using Diffusion.Runtime.Generation;

namespace Diffusion.Runtime.Tests;

/// <summary>SDEdit on the closed-form Gaussian model.</summary>
public class Img2ImgTests
{
    private static float[] DataSamples(int count, int size, ulong seed)
    {
        var x = new float[count * size];
        new Noise.NoiseGenerator(seed).Fill(x, 0, size, 0);
        for (int i = 0; i < x.Length; i++) x[i] = Fixtures.Mean + Fixtures.Std * x[i];
        return x;
    }

    private static GenerationResult Edit(Onnx.DiffusionModel model, float[] input, int count, double strength,
        string sampler = "ddim", int steps = 50) =>
        new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = sampler, Steps = steps, Count = count, BatchSize = 256, Seed = 9, InitialImages = input,
            Strength = strength,
        });

    private static double Rms(float[] a, float[] b) =>
        Math.Sqrt(a.Zip(b, (x, y) => (double)(x - y) * (x - y)).Average());

    [Fact]
    public void Strength_towards_zero_returns_the_input_and_larger_strengths_move_further()
    {
        using var model = Fixtures.Gaussian();
        var input = DataSamples(16, model.ImageSize, 3);
        Assert.Equal(input, Edit(model, input, 16, 0.005).Images); // round(0.005·50) = 0 steps: the input itself
        double previous = 0;
        foreach (var s in new[] { 0.04, 0.3, 0.7, 1.0 })
        {
            double distance = Rms(Edit(model, input, 16, s).Images, input);
            Assert.True(distance > previous, $"strength {s}: rms {distance} not above {previous}");
            previous = distance;
        }
        double small = Rms(Edit(model, input, 16, 0.04).Images, input);
        Assert.True(small < 0.15 && small < previous / 3, $"rms {small} at strength 0.04, {previous} at 1");
    }

    [Fact]
    public void Editing_data_samples_keeps_the_data_distribution()
    {
        // With the exact denoiser, noising a data sample to level t and sampling back draws from p(x₀ | x_t):
        // over many inputs the outputs are again N(μ, s²).
        using var model = Fixtures.Gaussian();
        var input = DataSamples(2048, model.ImageSize, 4);
        var output = Edit(model, input, 2048, 0.5, "ddpm", 500).Images;
        var (mean, std) = Fixtures.Moments(output);
        Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
        Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
        Assert.NotEqual(input, output);
    }

    [Fact]
    public void Bad_strength_or_size_is_refused()
    {
        using var model = Fixtures.Gaussian();
        var input = DataSamples(2, model.ImageSize, 5);
        Assert.Equal("Strength", Assert.Throws<DiffusionArgumentException>(() => Edit(model, input, 2, 0)).Parameter);
        Assert.Equal("Strength", Assert.Throws<DiffusionArgumentException>(() => Edit(model, input, 2, 1.5)).Parameter);
        Assert.Equal("InitialImages",
            Assert.Throws<DiffusionArgumentException>(() => Edit(model, input[..10], 2, 0.5)).Parameter);
    }
}
