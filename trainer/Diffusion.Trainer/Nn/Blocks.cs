using Diffusion.OnnxGraph;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Torch;
using static Diffusion.Trainer.Torch.Functional;

namespace Diffusion.Trainer.Nn;

/// <summary>Sinusoidal embedding of (fractional) timesteps (Vaswani et al. 2017; Ho et al. 2020), then a 2-layer SiLU MLP.</summary>
public sealed class TimeEmbedding : Module
{
    private readonly long _dim;
    private readonly float[] _frequencies;
    private readonly Linear _first, _second;

    /// <summary>Sinusoids of width <paramref name="dim"/>, projected to <paramref name="outDim"/>.</summary>
    public TimeEmbedding(long dim, long outDim, Generator g)
    {
        _dim = dim;
        long half = dim / 2;
        // ω_k = 10000^(−k/half), k = 0 … half−1.
        _frequencies = Enumerable.Range(0, (int)half).Select(k => (float)Math.Exp(-Math.Log(10000) * k / half)).ToArray();
        _first = Child("linear_1", new Linear(dim, outDim, g));
        _second = Child("linear_2", new Linear(outDim, outDim, g));
    }

    /// <summary>[sin(t·ω), cos(t·ω)] → Linear → SiLU → Linear, for t [B].</summary>
    public Tensor Forward(Tensor t)
    {
        using var scope = DisposeScope.Enter();
        var freqs = Tensor.FromArray(_frequencies, 1, _frequencies.Length);
        var args = t.Reshape(-1, 1) * freqs;
        var sinusoid = Tensor.Cat([args.Sin(), args.Cos()], 1);
        return scope.MoveToOuter(_second.Forward(_first.Forward(sinusoid).Silu()));
    }

    /// <summary>Same arithmetic in ONNX.</summary>
    public Value Export(OnnxEmitter e, Value t)
    {
        var g = e.G;
        var args = g.Mul(g.Reshape(t, -1, 1), e.Constant(Qualify("frequencies"), _frequencies, 1, _frequencies.Length));
        var sinusoid = g.Node("Concat", [g.Node("Sin", [args]), g.Node("Cos", [args])], null, Attr.Int("axis", 1));
        return _second.Export(e, e.Silu(_first.Export(e, sinusoid)));
    }
}

/// <summary>
/// Residual block (Ho et al. 2020, Wide-ResNet style): h = conv(SiLU(norm(x))) + Linear(SiLU(emb)), then
/// conv(dropout(SiLU(norm(h)))), plus x (through a 1×1 conv when the width changes). The last conv starts at zero.
/// </summary>
public sealed class ResBlock : Module
{
    private readonly GroupNorm _norm1, _norm2;
    private readonly Conv2d _conv1, _conv2;
    private readonly Linear _embedding;
    private readonly Conv2d? _skip;
    private readonly double _dropout;

    /// <summary>in → out channels, conditioned on an embedding of width <paramref name="embDim"/>.</summary>
    public ResBlock(long inChannels, long outChannels, long embDim, long groups, double dropout, Generator g)
    {
        _dropout = dropout;
        _norm1 = Child("norm1", new GroupNorm(groups, inChannels));
        _conv1 = Child("conv1", new Conv2d(inChannels, outChannels, 3, g, padding: 1));
        _embedding = Child("time_emb_proj", new Linear(embDim, outChannels, g));
        _norm2 = Child("norm2", new GroupNorm(groups, outChannels));
        _conv2 = Child("conv2", new Conv2d(outChannels, outChannels, 3, g, padding: 1).ZeroInit());
        if (inChannels != outChannels) _skip = Child("skip", new Conv2d(inChannels, outChannels, 1, g));
    }

    /// <summary>The block on x [B,C,H,W] with embedding emb [B,E].</summary>
    public Tensor Forward(Tensor x, Tensor emb)
    {
        using var scope = DisposeScope.Enter();
        var h = _conv1.Forward(_norm1.Forward(x).Silu());
        var e = _embedding.Forward(emb.Silu());
        h = h + e.Reshape(e.Size(0), e.Size(1), 1, 1);
        h = _conv2.Forward(Dropout(_norm2.Forward(h).Silu(), _dropout, Training));
        return scope.MoveToOuter((_skip?.Forward(x) ?? x) + h);
    }

    /// <summary>Same in ONNX (dropout is the identity at inference).</summary>
    public Value Export(OnnxEmitter e, Value x, Value emb)
    {
        var g = e.G;
        var h = _conv1.Export(e, e.Silu(_norm1.Export(e, x)));
        h = g.Add(h, g.Reshape(_embedding.Export(e, e.Silu(emb)), 0, -1, 1, 1));
        h = _conv2.Export(e, e.Silu(_norm2.Export(e, h)));
        return g.Add(_skip?.Export(e, x) ?? x, h);
    }
}

/// <summary>Single-head self-attention over the pixels of a feature map, with a residual connection (Ho et al. 2020).</summary>
public sealed class SelfAttention : Module
{
    private readonly GroupNorm _norm;
    private readonly Conv2d _qkv, _out;
    private readonly long _channels;

    /// <summary>Attention over <paramref name="channels"/>-wide features.</summary>
    public SelfAttention(long channels, long groups, Generator g)
    {
        _channels = channels;
        _norm = Child("norm", new GroupNorm(groups, channels));
        _qkv = Child("qkv", new Conv2d(channels, 3 * channels, 1, g));
        _out = Child("proj_out", new Conv2d(channels, channels, 1, g).ZeroInit());
    }

    /// <summary>x + proj(softmax(qᵀk/√C) applied to v).</summary>
    public Tensor Forward(Tensor x)
    {
        using var scope = DisposeScope.Enter();
        var shape = x.Shape;
        long b = shape[0], c = shape[1], hw = shape[2] * shape[3];
        var qkv = _qkv.Forward(_norm.Forward(x)).Reshape(b, 3, c, hw);
        var q = qkv.Narrow(1, 0, 1).Reshape(b, c, hw);
        var k = qkv.Narrow(1, 1, 1).Reshape(b, c, hw);
        var v = qkv.Narrow(1, 2, 1).Reshape(b, c, hw);
        var weights = (q.Transpose(1, 2).MatMul(k) * (1 / Math.Sqrt(c))).Softmax(-1); // [B, HW(query), HW(key)]
        var attended = v.MatMul(weights.Transpose(1, 2)).Reshape(shape);              // [B, C, HW(query)]
        return scope.MoveToOuter(x + _out.Forward(attended));
    }

    /// <summary>Same in ONNX.</summary>
    public Value Export(OnnxEmitter e, Value x)
    {
        var g = e.G;
        var qkv = g.Reshape(_qkv.Export(e, _norm.Export(e, x)), 0, 3, _channels, -1);
        var parts = g.NodeN("Split", [qkv], 3, null, Attr.Int("axis", 1));
        Value Flat(Value v) => g.Reshape(v, 0, _channels, -1);
        Value q = Flat(parts[0]), k = Flat(parts[1]), v = Flat(parts[2]);
        var scores = g.Mul(g.Node("MatMul", [g.Node("Transpose", [q], null, Attr.Ints("perm", 0, 2, 1)), k]), g.Scalar((float)(1 / Math.Sqrt(_channels))));
        var weights = g.Node("Softmax", [scores], null, Attr.Int("axis", -1));
        var attended = g.Node("MatMul", [v, g.Node("Transpose", [weights], null, Attr.Ints("perm", 0, 2, 1))]);
        return g.Add(x, _out.Export(e, g.Node("Reshape", [attended, g.Node("Shape", [x])])));
    }
}

/// <summary>Halves the resolution with a stride-2 3×3 convolution.</summary>
public sealed class Downsample : Module
{
    private readonly Conv2d _conv;

    /// <summary>Keeps the channel count.</summary>
    public Downsample(long channels, Generator g) => _conv = Child("conv", new Conv2d(channels, channels, 3, g, stride: 2, padding: 1));

    /// <summary>[B,C,H,W] → [B,C,⌈H/2⌉,⌈W/2⌉].</summary>
    public Tensor Forward(Tensor x) => _conv.Forward(x);

    /// <summary>Same in ONNX.</summary>
    public Value Export(OnnxEmitter e, Value x) => _conv.Export(e, x);
}

/// <summary>Doubles the resolution: nearest-neighbour ×2, then a 3×3 convolution.</summary>
public sealed class Upsample : Module
{
    private readonly Conv2d _conv;

    /// <summary>Keeps the channel count.</summary>
    public Upsample(long channels, Generator g) => _conv = Child("conv", new Conv2d(channels, channels, 3, g, padding: 1));

    /// <summary>[B,C,H,W] → [B,C,2H,2W].</summary>
    public Tensor Forward(Tensor x)
    {
        using var scope = DisposeScope.Enter();
        return scope.MoveToOuter(_conv.Forward(UpsampleNearest(x, 2)));
    }

    /// <summary>ONNX Resize (nearest, asymmetric, floor: PyTorch's nearest) then Conv.</summary>
    public Value Export(OnnxEmitter e, Value x)
    {
        var g = e.G;
        var scales = e.Constant(Qualify("scales"), [1, 1, 2, 2], 4);
        var up = g.Node("Resize", [x, new Value(""), scales], null,
            Attr.String("mode", "nearest"), Attr.String("coordinate_transformation_mode", "asymmetric"), Attr.String("nearest_mode", "floor"));
        return _conv.Export(e, up);
    }
}
