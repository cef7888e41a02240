using Diffusion.Runtime.Noise;

namespace Diffusion.Runtime.Tests;

public class NoiseTests
{
    [Theory] // Random123's tests/kat_vectors, "philox4x32 10" lines: counter, key → output.
    [InlineData(0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [InlineData(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [InlineData(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void Philox4x32_10_matches_the_Random123_known_answers(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1,
        uint r0, uint r1, uint r2, uint r3) =>
        Assert.Equal((r0, r1, r2, r3), Philox4x32.Block(c0, c1, c2, c3, k0, k1));

    [Fact]
    public void Draws_are_standard_normal()
    {
        var values = new float[1 << 18];
        new NoiseGenerator(42).Fill(values, image: 3, draw: 0);
        var (mean, std) = Fixtures.Moments(values);
        Assert.InRange(mean, -0.01, 0.01);
        Assert.InRange(std, 0.99, 1.01);
        double fourth = values.Average(v => Math.Pow(v, 4));
        Assert.InRange(fourth, 2.9, 3.1); // kurtosis of a Gaussian
    }

    [Fact]
    public void An_image_draw_depends_only_on_seed_image_and_draw_index()
    {
        const int size = 37; // odd on purpose: the last Philox block is partly used
        var batch = new float[5 * size];
        new NoiseGenerator(9).Fill(batch, firstImage: 10, imageSize: size, draw: 3);
        var single = new float[size];
        new NoiseGenerator(9).Fill(single, image: 12, draw: 3);
        Assert.Equal(single, batch.AsSpan(2 * size, size).ToArray());

        var otherDraw = new float[size];
        new NoiseGenerator(9).Fill(otherDraw, image: 12, draw: 4);
        Assert.NotEqual(single, otherDraw);
        var otherSeed = new float[size];
        new NoiseGenerator(10).Fill(otherSeed, image: 12, draw: 3);
        Assert.NotEqual(single, otherSeed);
    }
}
