using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Nn;

/// <summary>TorchSharp layers made the way PyTorch makes them, where TorchSharp 0.107 differs.</summary>
public static class Layers
{
    /// <summary>
    /// nn.GroupNorm with PyTorch's initial affine γ = 1, β = 0. TorchSharp 0.107's GroupNorm leaves both uninitialised
    /// (measured: values such as 2.4e−8 and 4.6e−41, and NaN losses), so they are set here.
    /// </summary>
    public static GroupNorm GroupNorm(long groups, long channels)
    {
        var norm = nn.GroupNorm(groups, channels);
        using var noGrad = no_grad();
        norm.weight!.fill_(1);
        norm.bias!.zero_();
        return norm;
    }
}
