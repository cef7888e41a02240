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

    /// <summary>
    /// The convolution in the input's precision: bfloat16 activations meet bfloat16 copies of the float32 weights (the
    /// cast is part of the autograd graph, so the gradient lands on the float32 weights); float32 input is the plain
    /// forward.
    /// </summary>
    public static Tensor Conv(Conv2d conv, Tensor x)
    {
        var weight = conv.weight!;
        if (x.dtype == weight.dtype) return conv.forward(x);
        return nn.functional.conv2d(x, weight.to(x.dtype), conv.bias?.to(x.dtype), conv.stride, conv.padding,
            conv.dilation, conv.groups);
    }
}
