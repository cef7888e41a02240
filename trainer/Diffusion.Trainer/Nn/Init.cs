using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Nn;

/// <summary>Parameter initialisation (PyTorch's defaults), drawn from a seeded generator.</summary>
public static class Init
{
    /// <summary>U(−b, b) with b = 1/√fan_in: PyTorch's default for Linear/Conv weights (kaiming_uniform, a = √5) and biases.</summary>
    public static Tensor Uniform(long[] shape, long fanIn, Generator generator)
    {
        using var scope = DisposeScope.Enter();
        double bound = 1 / Math.Sqrt(fanIn);
        return scope.MoveToOuter(Tensor.Rand(shape, generator) * (2 * bound) - bound);
    }

    /// <summary>N(0, 1), as nn.Embedding.</summary>
    public static Tensor Normal(long[] shape, Generator generator) => Tensor.Randn(shape, generator);

    /// <summary>Zeros.</summary>
    public static Tensor Zeros(params long[] shape) => Tensor.Zeros(shape);

    /// <summary>Ones.</summary>
    public static Tensor Ones(params long[] shape) => Tensor.Full(shape, 1);
}
