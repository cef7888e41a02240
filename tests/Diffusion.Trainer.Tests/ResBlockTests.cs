using Diffusion.Trainer.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

/// <summary>
/// The residual block's two ways of conditioning, checked by hand: with weights chosen so that the answer is known
/// without re-deriving the block (an identity last conv, an embedding projection of zero weight and a chosen bias).
/// </summary>
[Collection(DefaultGenerator.Name)]
public class ResBlockTests
{
    private const int Channels = 4;
    private static readonly float[] Shift = [-1.5f, -0.25f, 0.5f, 2f];

    /// <summary>
    /// Scale-shift (AdaGN): the projection's first half is the scale s, the second the shift b, and the norm's output
    /// is multiplied by 1 + s. With s = −1 the features vanish and the block is x + SiLU(b) per channel, whatever x is.
    /// </summary>
    [Fact]
    public void Scale_shift_multiplies_the_norm_by_one_plus_the_first_half_and_adds_the_second()
    {
        using var scope = NewDisposeScope();
        var x = BlockInput();
        var y = Block(scaleShift: true, bias: [.. Enumerable.Repeat(-1f, Channels), .. Shift]).forward(x, zeros(2, 3));
        for (int c = 0; c < Channels; c++)
        {
            double expected = Shift[c] / (1 + Math.Exp(-Shift[c]));
            var difference = (y[.., c] - x[.., c] - expected).abs().max().item<float>();
            Assert.True(difference < 1e-5, $"channel {c}: off by {difference}");
        }
        // The halves swapped (scale b, shift −1) is another block: the order is diffusers' (scale, then shift).
        var swapped = Block(scaleShift: true, bias: [.. Shift, .. Enumerable.Repeat(-1f, Channels)]).forward(x,
            zeros(2, 3));
        Assert.True((swapped - y).abs().max().item<float>() > 0.1);
    }

    /// <summary>
    /// Additive: the embedding is added before the second norm, which removes a shift shared by a whole group — so a
    /// bias equal across each group's channels changes nothing, and one that differs within a group does.
    /// </summary>
    [Fact]
    public void Additive_conditioning_is_added_before_the_second_norm()
    {
        using var scope = NewDisposeScope();
        var x = BlockInput();
        var none = Block(scaleShift: false, bias: [0, 0, 0, 0]).forward(x, zeros(2, 3));
        var perGroup = Block(scaleShift: false, bias: [3, 3, -2, -2]).forward(x, zeros(2, 3));
        var perChannel = Block(scaleShift: false, bias: [3, -3, 0, 0]).forward(x, zeros(2, 3));
        Assert.True((perGroup - none).abs().max().item<float>() < 1e-4, "a per-group constant is normalised away");
        Assert.True((perChannel - none).abs().max().item<float>() > 0.1);
    }

    private static Tensor BlockInput()
    {
        using var g = new Generator(5);
        return randn([2, Channels, 6, 6], generator: g);
    }

    /// <summary>
    /// A block with random first conv, an identity last conv, and an embedding projection of weight 0 and the given
    /// bias.
    /// </summary>
    private static ResBlock Block(bool scaleShift, float[] bias)
    {
        random.manual_seed(6);
        var block = new ResBlock(Channels, Channels, embDim: 3, groups: 2, dropoutRate: 0, scaleShift);
        block.eval();
        var parameters = block.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        parameters["time_emb_proj.weight"].zero_();
        parameters["time_emb_proj.bias"].copy_(tensor(bias));
        var identity = zeros(Channels, Channels, 3, 3);
        for (int c = 0; c < Channels; c++) identity[c, c, 1, 1] = tensor(1f);
        parameters["conv2.weight"].copy_(identity);
        parameters["conv2.bias"].zero_();
        return block;
    }
}
