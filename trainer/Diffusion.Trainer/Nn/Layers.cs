using Diffusion.OnnxGraph;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Torch;
using static Diffusion.Trainer.Torch.Functional;

namespace Diffusion.Trainer.Nn;

/// <summary>nn.Conv2d with a square kernel, "same"-style padding given explicitly.</summary>
public sealed class Conv2d : Module
{
    private readonly Param _weight, _bias;
    private readonly long _stride, _padding, _kernel;

    /// <summary>in → out channels, k×k kernel.</summary>
    public Conv2d(long inChannels, long outChannels, long kernel, Generator g, long stride = 1, long padding = 0)
    {
        (_stride, _padding, _kernel) = (stride, padding, kernel);
        long fanIn = inChannels * kernel * kernel;
        _weight = Parameter("weight", Init.Uniform([outChannels, inChannels, kernel, kernel], fanIn, g));
        _bias = Parameter("bias", Init.Uniform([outChannels], fanIn, g));
    }

    /// <summary>Zeroes weight and bias (output layers that start as the identity of a residual).</summary>
    public Conv2d ZeroInit()
    {
        using var _ = new NoGrad();
        _weight.Value.ZeroInPlace();
        _bias.Value.ZeroInPlace();
        return this;
    }

    /// <summary>The convolution.</summary>
    public Tensor Forward(Tensor x) => Conv2d(x, _weight, _bias, _stride, _padding);

    /// <summary>ONNX Conv.</summary>
    public Value Export(OnnxEmitter e, Value x) => e.G.Node("Conv", [x, e.Weight(Qualify("weight"), _weight), e.Weight(Qualify("bias"), _bias)], null,
        Attr.Ints("kernel_shape", _kernel, _kernel), Attr.Ints("strides", _stride, _stride), Attr.Ints("pads", _padding, _padding, _padding, _padding));
}

/// <summary>nn.Linear: x·Wᵀ + b.</summary>
public sealed class Linear : Module
{
    private readonly Param _weight, _bias;

    /// <summary>in → out features.</summary>
    public Linear(long inFeatures, long outFeatures, Generator g)
    {
        _weight = Parameter("weight", Init.Uniform([outFeatures, inFeatures], inFeatures, g));
        _bias = Parameter("bias", Init.Uniform([outFeatures], inFeatures, g));
    }

    /// <summary>x·Wᵀ + b.</summary>
    public Tensor Forward(Tensor x) => Linear(x, _weight, _bias);

    /// <summary>ONNX MatMul with Wᵀ, then Add.</summary>
    public Value Export(OnnxEmitter e, Value x)
    {
        var shape = _weight.Value.Shape;
        using var scope = DisposeScope.Enter();
        var transposed = _weight.Value.Transpose(0, 1).Contiguous();
        return e.G.Add(e.G.Node("MatMul", [x, e.Weight(Qualify("weight_t"), transposed, shape[1], shape[0])]), e.Weight(Qualify("bias"), _bias));
    }
}

/// <summary>nn.GroupNorm with a per-channel affine (γ = 1, β = 0 at start), ε = 1e−5.</summary>
public sealed class GroupNorm : Module
{
    private const double Eps = 1e-5;
    private readonly Param _weight, _bias;
    private readonly long _groups, _channels;

    /// <summary><paramref name="groups"/> groups over <paramref name="channels"/> channels.</summary>
    public GroupNorm(long groups, long channels)
    {
        if (channels % groups != 0) throw new ArgumentException($"GroupNorm: {channels} channels do not split into {groups} groups.");
        (_groups, _channels) = (groups, channels);
        _weight = Parameter("weight", Init.Ones(channels));
        _bias = Parameter("bias", Init.Zeros(channels));
    }

    /// <summary>Normalises each group of each image to zero mean, unit variance, then scales and shifts per channel.</summary>
    public Tensor Forward(Tensor x) => GroupNorm(x, _groups, _weight, _bias, Eps);

    /// <summary>Opset 17 has no GroupNormalization: reshape to [B, G, −1], normalise, reshape back, affine.</summary>
    public Value Export(OnnxEmitter e, Value x)
    {
        var g = e.G;
        var grouped = g.Reshape(x, 0, _groups, -1);
        var mean = g.Node("ReduceMean", [grouped], null, Attr.Ints("axes", 2), Attr.Int("keepdims", 1));
        var centered = g.Sub(grouped, mean);
        var variance = g.Node("ReduceMean", [g.Mul(centered, centered)], null, Attr.Ints("axes", 2), Attr.Int("keepdims", 1));
        var normed = g.Div(centered, g.Sqrt(g.Add(variance, g.Scalar((float)Eps))));
        var restored = g.Node("Reshape", [normed, g.Node("Shape", [x])]);
        return g.Add(g.Mul(restored, e.Weight(Qualify("weight"), _weight, _channels, 1, 1)), e.Weight(Qualify("bias"), _bias, _channels, 1, 1));
    }
}

/// <summary>nn.Embedding: rows of a table picked by int64 labels.</summary>
public sealed class Embedding : Module
{
    private readonly Param _weight;

    /// <summary>A table of <paramref name="count"/> rows of width <paramref name="dim"/>, N(0, 1) at start.</summary>
    public Embedding(long count, long dim, Generator g) => _weight = Parameter("weight", Init.Normal([count, dim], g));

    /// <summary>The rows for <paramref name="labels"/>.</summary>
    public Tensor Forward(Tensor labels) => _weight.Value.IndexSelect(0, labels);

    /// <summary>ONNX Gather.</summary>
    public Value Export(OnnxEmitter e, Value labels) => e.G.Gather(e.Weight(Qualify("weight"), _weight), labels);
}
