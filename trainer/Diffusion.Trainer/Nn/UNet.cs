using Diffusion.OnnxGraph;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Nn;

/// <summary>The UNet's shape: one plain record, every field with its default.</summary>
public sealed record UNetConfig
{
    /// <summary>Image channels in and out.</summary>
    public int InChannels { get; init; } = 1;
    /// <summary>Image height = width.</summary>
    public int ImageSize { get; init; } = 28;
    /// <summary>Channels of the first level.</summary>
    public int BaseChannels { get; init; } = 32;
    /// <summary>Channel multiplier per level; each level after the first halves the resolution.</summary>
    public int[] ChannelMults { get; init; } = [1, 2, 2];
    /// <summary>Residual blocks per level on the way down (one more on the way up).</summary>
    public int ResBlocks { get; init; } = 2;
    /// <summary>Resolutions (feature-map sizes) that get self-attention.</summary>
    public int[] AttentionResolutions { get; init; } = [7];
    /// <summary>Dropout inside residual blocks.</summary>
    public double Dropout { get; init; } = 0.1;
    /// <summary>Number of classes (0: unconditional); label NumClasses is the null label for guidance.</summary>
    public int NumClasses { get; init; }
    /// <summary>GroupNorm groups (must divide every width).</summary>
    public int NormGroups { get; init; } = 8;

    /// <summary>Checks the combination and says what is wrong.</summary>
    public void Validate()
    {
        if (InChannels <= 0 || ImageSize <= 0 || BaseChannels <= 0 || ResBlocks <= 0) throw new ArgumentException("UNet sizes must be positive.");
        if (ChannelMults.Length == 0 || ChannelMults.Any(m => m <= 0)) throw new ArgumentException("--mults needs positive multipliers, e.g. 1,2,2.");
        int size = ImageSize;
        for (int i = 0; i < ChannelMults.Length - 1; i++)
        {
            if (size % 2 != 0) throw new ArgumentException($"--mults {string.Join(",", ChannelMults)}: level {i + 1} would halve an odd size {size}; use fewer levels.");
            size /= 2;
        }
        foreach (var m in ChannelMults)
            if (BaseChannels * m % NormGroups != 0) throw new ArgumentException($"Width {BaseChannels * m} is not divisible by {NormGroups} GroupNorm groups.");
    }
}

/// <summary>
/// The denoising UNet of Ho et al. 2020 (as in diffusers' UNet2DModel): time (and class) embedding added in every
/// residual block, self-attention at chosen resolutions, skip connections between levels. Forward runs on libtorch;
/// Export writes the same arithmetic as ONNX nodes.
/// </summary>
public sealed class UNet : Module
{
    private readonly UNetConfig _config;
    private readonly TimeEmbedding _time;
    private readonly Embedding? _classes;
    private readonly Conv2d _convIn, _convOut;
    private readonly GroupNorm _normOut;
    private readonly List<(ResBlock Block, SelfAttention? Attention)> _down = [], _up = [];
    private readonly List<Module?> _downsamples = [], _upsamples = [];
    private readonly ResBlock _mid1, _mid2;
    private readonly SelfAttention _midAttention;

    /// <summary>The config.</summary>
    public UNetConfig Config => _config;

    /// <summary>Builds the network with weights drawn from <paramref name="g"/>.</summary>
    public UNet(UNetConfig config, Generator g)
    {
        config.Validate();
        _config = config;
        long ch = config.BaseChannels, emb = 4 * ch, groups = config.NormGroups;
        _time = Child("time_embedding", new TimeEmbedding(ch, emb, g));
        if (config.NumClasses > 0) _classes = Child("class_embedding", new Embedding(config.NumClasses + 1, emb, g));
        _convIn = Child("conv_in", new Conv2d(config.InChannels, ch, 3, g, padding: 1));

        var skips = new List<long> { ch };
        long width = ch;
        int size = config.ImageSize;
        for (int level = 0; level < config.ChannelMults.Length; level++)
        {
            long outWidth = ch * config.ChannelMults[level];
            for (int i = 0; i < config.ResBlocks; i++)
            {
                var block = Child($"down.{level}.block.{i}", new ResBlock(width, outWidth, emb, groups, config.Dropout, g));
                var attention = config.AttentionResolutions.Contains(size) ? Child($"down.{level}.attn.{i}", new SelfAttention(outWidth, groups, g)) : null;
                _down.Add((block, attention));
                width = outWidth;
                skips.Add(width);
            }
            if (level < config.ChannelMults.Length - 1)
            {
                _downsamples.Add(Child($"down.{level}.downsample", new Downsample(width, g)));
                skips.Add(width);
                size /= 2;
            }
            else _downsamples.Add(null);
        }

        _mid1 = Child("mid.block_1", new ResBlock(width, width, emb, groups, config.Dropout, g));
        _midAttention = Child("mid.attn", new SelfAttention(width, groups, g));
        _mid2 = Child("mid.block_2", new ResBlock(width, width, emb, groups, config.Dropout, g));

        for (int level = config.ChannelMults.Length - 1; level >= 0; level--)
        {
            long outWidth = ch * config.ChannelMults[level];
            for (int i = 0; i < config.ResBlocks + 1; i++)
            {
                long skip = skips[^1];
                skips.RemoveAt(skips.Count - 1);
                var block = Child($"up.{level}.block.{i}", new ResBlock(width + skip, outWidth, emb, groups, config.Dropout, g));
                var attention = config.AttentionResolutions.Contains(size) ? Child($"up.{level}.attn.{i}", new SelfAttention(outWidth, groups, g)) : null;
                _up.Add((block, attention));
                width = outWidth;
            }
            if (level > 0)
            {
                _upsamples.Add(Child($"up.{level}.upsample", new Upsample(width, g)));
                size *= 2;
            }
            else _upsamples.Add(null);
        }
        _normOut = Child("norm_out", new GroupNorm(groups, width));
        _convOut = Child("conv_out", new Conv2d(width, config.InChannels, 3, g, padding: 1).ZeroInit());
    }

    /// <summary>model_output for x_t [B,C,H,W], timesteps t [B] (float) and, for class-conditional nets, labels [B] (int64).</summary>
    public Tensor Forward(Tensor x, Tensor t, Tensor? labels = null)
    {
        using var scope = DisposeScope.Enter();
        var emb = _time.Forward(t);
        if (_classes is not null)
        {
            if (labels is null) throw new ArgumentException("This UNet is class-conditional: pass class labels (num_classes is the null label).");
            emb = emb + _classes.Forward(labels);
        }
        var h = _convIn.Forward(x);
        var skips = new List<Tensor> { h };
        int block = 0;
        for (int level = 0; level < _config.ChannelMults.Length; level++)
        {
            for (int i = 0; i < _config.ResBlocks; i++, block++)
            {
                var (res, attention) = _down[block];
                h = res.Forward(h, emb);
                if (attention is not null) h = attention.Forward(h);
                skips.Add(h);
            }
            if (_downsamples[level] is Downsample down)
            {
                h = down.Forward(h);
                skips.Add(h);
            }
        }
        h = _mid2.Forward(_midAttention.Forward(_mid1.Forward(h, emb)), emb);
        block = 0;
        for (int level = 0; level < _config.ChannelMults.Length; level++)
        {
            for (int i = 0; i < _config.ResBlocks + 1; i++, block++)
            {
                var (res, attention) = _up[block];
                var skip = skips[^1];
                skips.RemoveAt(skips.Count - 1);
                h = res.Forward(Tensor.Cat([h, skip], 1), emb);
                if (attention is not null) h = attention.Forward(h);
            }
            if (_upsamples[level] is Upsample up) h = up.Forward(h);
        }
        return scope.MoveToOuter(_convOut.Forward(_normOut.Forward(h).Silu()));
    }

    /// <summary>Writes the network between the given graph inputs; returns the output value.</summary>
    public Value Export(OnnxEmitter e, Value x, Value t, Value? labels)
    {
        var g = e.G;
        var emb = _time.Export(e, t);
        if (_classes is not null) emb = g.Add(emb, _classes.Export(e, labels ?? throw new ArgumentException("class labels input missing")));
        var h = _convIn.Export(e, x);
        var skips = new List<Value> { h };
        int block = 0;
        for (int level = 0; level < _config.ChannelMults.Length; level++)
        {
            for (int i = 0; i < _config.ResBlocks; i++, block++)
            {
                var (res, attention) = _down[block];
                h = res.Export(e, h, emb);
                if (attention is not null) h = attention.Export(e, h);
                skips.Add(h);
            }
            if (_downsamples[level] is Downsample down)
            {
                h = down.Export(e, h);
                skips.Add(h);
            }
        }
        h = _mid2.Export(e, _midAttention.Export(e, _mid1.Export(e, h, emb)), emb);
        block = 0;
        for (int level = 0; level < _config.ChannelMults.Length; level++)
        {
            for (int i = 0; i < _config.ResBlocks + 1; i++, block++)
            {
                var (res, attention) = _up[block];
                var skip = skips[^1];
                skips.RemoveAt(skips.Count - 1);
                h = res.Export(e, g.Node("Concat", [h, skip], null, Attr.Int("axis", 1)), emb);
                if (attention is not null) h = attention.Export(e, h);
            }
            if (_upsamples[level] is Upsample up) h = up.Export(e, h);
        }
        return _convOut.Export(e, e.Silu(_normOut.Export(e, h)));
    }
}
