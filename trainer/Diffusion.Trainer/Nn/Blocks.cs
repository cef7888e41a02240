using Diffusion.OnnxGraph;
using Diffusion.Trainer.Export;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Diffusion.Trainer.Nn;

/// <summary>
/// Sinusoidal embedding of (fractional) timesteps (Vaswani et al. 2017; Ho et al. 2020), then a 2-layer SiLU MLP.
/// </summary>
public sealed class TimeEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly float[] _frequencies;
    private readonly Tensor frequencies;
    private readonly Linear linear_1, linear_2;

    /// <summary>Sinusoids of width <paramref name="dim"/>, projected to <paramref name="outDim"/>.</summary>
    public TimeEmbedding(long dim, long outDim) : base(nameof(TimeEmbedding))
    {
        long half = dim / 2;
        // ω_k = 10000^(−k/half), k = 0 … half−1.
        _frequencies = Enumerable.Range(0, (int)half).Select(k =>
            (float)Math.Exp(-Math.Log(10000) * k / half)).ToArray();
        frequencies = tensor(_frequencies).reshape(1, half);
        linear_1 = nn.Linear(dim, outDim);
        linear_2 = nn.Linear(outDim, outDim);
        register_buffer("frequencies", frequencies, persistent: false);
        register_module("linear_1", linear_1);
        register_module("linear_2", linear_2);
    }

    /// <summary>[sin(t·ω), cos(t·ω)] → Linear → SiLU → Linear, for t [B].</summary>
    public override Tensor forward(Tensor t)
    {
        var args = t.reshape(-1, 1) * frequencies;
        return linear_2.forward(F.silu(linear_1.forward(cat([args.sin(), args.cos()], 1))));
    }

    /// <summary>Same arithmetic in ONNX.</summary>
    public Value Export(OnnxEmitter e, Value t)
    {
        var g = e.G;
        var args = g.Mul(g.Reshape(t, -1, 1), g.Constant(_frequencies, 1, _frequencies.Length));
        var sinusoid = g.Node("Concat", [g.Node("Sin", [args]), g.Node("Cos", [args])], null, Attr.Int("axis", 1));
        return e.Linear(linear_2, e.Silu(e.Linear(linear_1, sinusoid)));
    }
}

/// <summary>
/// Residual block (Ho et al. 2020, Wide-ResNet style): h = conv(SiLU(norm(x))) + Linear(SiLU(emb)), then
/// conv(dropout(SiLU(norm(h)))), plus x (through a 1×1 conv when the width changes). The last conv starts at zero. With
/// scale-shift conditioning (AdaGN, Dhariwal &amp; Nichol 2021; diffusers'
/// <c>resnet_time_scale_shift="scale_shift"</c>) the embedding is not added but sets the second norm's per-channel
/// affine: [s, b] = Linear(SiLU(emb)), h = conv(dropout(SiLU(norm(h)·(1 + s) + b))).
/// </summary>
public sealed class ResBlock : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly GroupNorm norm1, norm2;
    private readonly Conv2d conv1, conv2;
    private readonly Linear time_emb_proj;
    private readonly Dropout dropout;
    private readonly Conv2d? skip;
    private readonly bool _scaleShift;

    /// <summary>
    /// in → out channels, conditioned on an embedding of width <paramref name="embDim"/>: added to the features, or
    /// with <paramref name="scaleShift"/> setting the second norm's scale and shift.
    /// </summary>
    public ResBlock(long inChannels, long outChannels, long embDim, long groups, double dropoutRate,
        bool scaleShift = false) : base(nameof(ResBlock))
    {
        _scaleShift = scaleShift;
        norm1 = Layers.GroupNorm(groups, inChannels);
        conv1 = nn.Conv2d(inChannels, outChannels, 3, padding: 1);
        time_emb_proj = nn.Linear(embDim, scaleShift ? 2 * outChannels : outChannels);
        norm2 = Layers.GroupNorm(groups, outChannels);
        dropout = nn.Dropout(dropoutRate);
        conv2 = ZeroInit(nn.Conv2d(outChannels, outChannels, 3, padding: 1));
        register_module("norm1", norm1);
        register_module("conv1", conv1);
        register_module("time_emb_proj", time_emb_proj);
        register_module("norm2", norm2);
        register_module("dropout", dropout);
        register_module("conv2", conv2);
        if (inChannels != outChannels) register_module("skip", skip = nn.Conv2d(inChannels, outChannels, 1));
    }

    /// <summary>The block on x [B,C,H,W] with embedding emb [B,E].</summary>
    public override Tensor forward(Tensor x, Tensor emb)
    {
        var h = Layers.Conv(conv1, F.silu(norm1.forward(x)));
        var e = time_emb_proj.forward(F.silu(emb));
        e = e.reshape(e.shape[0], e.shape[1], 1, 1).to(h.dtype);
        if (_scaleShift)
        {
            var scaleAndShift = e.chunk(2, 1);
            h = norm2.forward(h) * (scaleAndShift[0] + 1) + scaleAndShift[1];
        }
        else h = norm2.forward(h + e);
        h = Layers.Conv(conv2, dropout.forward(F.silu(h)));
        return (skip is null ? x : Layers.Conv(skip, x)) + h;
    }

    /// <summary>Same in ONNX (dropout is the identity at inference).</summary>
    public Value Export(OnnxEmitter e, Value x, Value emb)
    {
        var g = e.G;
        var h = e.Conv(conv1, e.Silu(e.GroupNorm(norm1, x)));
        var projected = g.Reshape(e.Linear(time_emb_proj, e.Silu(emb)), 0, -1, 1, 1);
        if (_scaleShift)
        {
            var scaleAndShift = g.NodeN("Split", [projected], 2, null, Attr.Int("axis", 1));
            h = g.Add(g.Mul(e.GroupNorm(norm2, h), g.Add(scaleAndShift[0], g.Scalar(1))), scaleAndShift[1]);
        }
        else h = e.GroupNorm(norm2, g.Add(h, projected));
        h = e.Conv(conv2, e.Silu(h));
        return g.Add(skip is null ? x : e.Conv(skip, x), h);
    }

    /// <summary>Zeroes a conv's weight and bias: output layers that start as the identity of a residual.</summary>
    internal static Conv2d ZeroInit(Conv2d conv)
    {
        using var noGrad = no_grad();
        conv.weight!.zero_();
        conv.bias?.zero_();
        return conv;
    }
}

/// <summary>
/// Single-head self-attention over the pixels of a feature map, with a residual connection (Ho et al. 2020).
/// </summary>
public sealed class SelfAttention : nn.Module<Tensor, Tensor>
{
    private readonly GroupNorm norm;
    private readonly Conv2d qkv, proj_out;
    private readonly long _channels;

    /// <summary>Attention over <paramref name="channels"/>-wide features.</summary>
    public SelfAttention(long channels, long groups) : base(nameof(SelfAttention))
    {
        _channels = channels;
        norm = Layers.GroupNorm(groups, channels);
        qkv = nn.Conv2d(channels, 3 * channels, 1);
        proj_out = ResBlock.ZeroInit(nn.Conv2d(channels, channels, 1));
        register_module("norm", norm);
        register_module("qkv", qkv);
        register_module("proj_out", proj_out);
    }

    /// <summary>x + proj(v·softmax(qᵀk/√C)ᵀ).</summary>
    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3];
        var parts = Layers.Conv(qkv, norm.forward(x)).reshape(b, 3, c, hw);
        Tensor q = parts.select(1, 0), k = parts.select(1, 1), v = parts.select(1, 2);
        // The softmax in float32 whatever the activations' precision: bfloat16 logits would round before exp.
        // [B, HW(query), HW(key)]
        var weights = (q.transpose(1, 2).matmul(k).to(ScalarType.Float32) * (1 / Math.Sqrt(c))).softmax(-1).to(x.dtype);
        var attended = v.matmul(weights.transpose(1, 2)).reshape(x.shape);            // [B, C, HW(query)]
        return x + Layers.Conv(proj_out, attended);
    }

    /// <summary>Same in ONNX.</summary>
    public Value Export(OnnxEmitter e, Value x)
    {
        var g = e.G;
        // [B, 3C, H, W] → [B, 3C, HW] → q, k, v [B, C, HW] (one reshape, then an even split of the channels)
        var flat = g.Reshape(e.Conv(qkv, e.GroupNorm(norm, x)), 0, 3 * _channels, -1);
        var parts = g.NodeN("Split", [flat], 3, null, Attr.Int("axis", 1));
        Value q = parts[0], k = parts[1], v = parts[2];
        var scores = g.Mul(g.Node("MatMul", [g.Node("Transpose", [q], null, Attr.Ints("perm", 0, 2, 1)), k]),
            g.Scalar((float)(1 / Math.Sqrt(_channels))));
        var weights = g.Node("Softmax", [scores], null, Attr.Int("axis", -1));
        var attended = g.Node("MatMul", [v, g.Node("Transpose", [weights], null, Attr.Ints("perm", 0, 2, 1))]);
        return g.Add(x, e.Conv(proj_out, g.Node("Reshape", [attended, g.Node("Shape", [x])])));
    }
}

/// <summary>Halves the resolution with a stride-2 3×3 convolution.</summary>
public sealed class Downsample : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    /// <summary>Keeps the channel count.</summary>
    public Downsample(long channels) : base(nameof(Downsample))
    {
        conv = nn.Conv2d(channels, channels, 3, stride: 2, padding: 1);
        register_module("conv", conv);
    }

    /// <summary>[B,C,H,W] → [B,C,⌈H/2⌉,⌈W/2⌉].</summary>
    public override Tensor forward(Tensor x) => Layers.Conv(conv, x);

    /// <summary>Same in ONNX.</summary>
    public Value Export(OnnxEmitter e, Value x) => e.Conv(conv, x);
}

/// <summary>Doubles the resolution: nearest-neighbour ×2, then a 3×3 convolution.</summary>
public sealed class Upsample : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    /// <summary>Keeps the channel count.</summary>
    public Upsample(long channels) : base(nameof(Upsample))
    {
        conv = nn.Conv2d(channels, channels, 3, padding: 1);
        register_module("conv", conv);
    }

    /// <summary>[B,C,H,W] → [B,C,2H,2W].</summary>
    public override Tensor forward(Tensor x) =>
        Layers.Conv(conv, F.interpolate(x, scale_factor: [2, 2], mode: InterpolationMode.Nearest));

    /// <summary>ONNX Resize (nearest, asymmetric, floor: PyTorch's nearest) then Conv.</summary>
    public Value Export(OnnxEmitter e, Value x)
    {
        var g = e.G;
        var scales = g.Constant([1, 1, 2, 2], 4);
        var up = g.Node("Resize", [x, new Value(""), scales], null,
            Attr.String("mode", "nearest"), Attr.String("coordinate_transformation_mode", "asymmetric"),
                Attr.String("nearest_mode", "floor"));
        return e.Conv(conv, up);
    }
}
