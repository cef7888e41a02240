using Diffusion.OnnxGraph;
using Diffusion.Trainer.Export;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

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
    /// <summary>
    /// Scale-shift conditioning (AdaGN): the time and class embedding sets each residual block's second-norm scale and
    /// shift instead of being added to its features (Dhariwal &amp; Nichol 2021). Off: the additive blocks of Ho et al.
    /// </summary>
    public bool ScaleShift { get; init; }
    /// <summary>
    /// A learned variance (Nichol &amp; Dhariwal 2021): the network also outputs v, C more channels after its
    /// prediction, for Σ = exp(f log β + (1 − f) log β̃), f = (v + 1)/2; exported with variance_type learned_range and
    /// trained with the hybrid loss.
    /// </summary>
    public bool LearnSigma { get; init; }

    /// <summary>The output's channels: the prediction's C, and C more for v with <see cref="LearnSigma"/>.</summary>
    public int OutChannels => LearnSigma ? 2 * InChannels : InChannels;

    /// <summary>The widest level a UNet may have (BaseChannels × a multiplier).</summary>
    public const int MaxWidth = 8192;

    /// <summary>
    /// Tensors of its own width and size that a residual block's forward pass keeps for the backward pass (norms,
    /// activations, convolutions, the embedding's add, dropout, the skip and the sum; an up block's input is twice as
    /// wide): calibrated against the peak memory of training steps.
    /// </summary>
    private const int SavedPerResBlock = 18;

    /// <summary>
    /// The values one image's training step keeps for the backward pass, estimated from the shape: per residual block
    /// <see cref="SavedPerResBlock"/> tensors of its width and size; per self-attention q, k, v and the output, and its
    /// s²×s² weights twice (the logits and the softmax).
    /// </summary>
    public double ActivationsPerImage()
    {
        double total = 0;
        int size = ImageSize;
        double Level(double width, double plane, int blocks, bool attention) =>
            blocks * (SavedPerResBlock * width * plane + (attention ? 4 * width * plane + 2 * plane * plane : 0));
        for (int level = 0; level < ChannelMults.Length; level++)
        {
            double width = (double)BaseChannels * ChannelMults[level], plane = (double)size * size;
            total += Level(width, plane, 2 * ResBlocks + 1, AttentionResolutions.Contains(size));
            if (level < ChannelMults.Length - 1) size /= 2;
        }
        double last = (double)BaseChannels * ChannelMults[^1];
        return total + Level(last, (double)size * size, 2, attention: true); // the middle blocks and attention
    }

    /// <summary>Checks the combination and says what is wrong.</summary>
    public void Validate()
    {
        if (InChannels <= 0 || ImageSize <= 0 || BaseChannels <= 0 || ResBlocks <= 0)
            throw new DiffusionArgumentException(nameof(BaseChannels), "UNet sizes must be positive.");
        if (NormGroups <= 0)
            throw new DiffusionArgumentException(nameof(NormGroups), $"expected a positive number of groups, got "
                + $"{NormGroups}.");
        if (NumClasses is < 0 or > 1_000_000)
            throw new DiffusionArgumentException(nameof(NumClasses),
                $"expected 0…1,000,000 classes, got {NumClasses}.");
        if (InChannels > 64 || ImageSize > 16384)
            throw new DiffusionArgumentException(nameof(ImageSize), $"{InChannels} channels of {ImageSize}² pixels: "
                + "at most 64 channels and 16384 pixels a side.");
        if (ChannelMults is null || AttentionResolutions is null)
            throw new DiffusionArgumentException(nameof(ChannelMults), "the multipliers and attention resolutions "
                + "must be given (empty lists are allowed for attention).");
        if (ChannelMults.Length == 0 || ChannelMults.Any(m => m <= 0))
            throw new DiffusionArgumentException(nameof(ChannelMults), "expected positive multipliers, e.g. 1,2,2.");
        // bounds before anything is allocated: the widest level, the depth
        if (BaseChannels > MaxWidth || ChannelMults.Any(m => (long)BaseChannels * m > MaxWidth))
            throw new DiffusionArgumentException(nameof(BaseChannels), $"{BaseChannels} channels × multipliers " +
                $"{string.Join(",", ChannelMults)} make a level wider than {MaxWidth} channels.");
        if (ChannelMults.Length > 8 || ResBlocks > 16)
            throw new DiffusionArgumentException(nameof(ChannelMults), $"{ChannelMults.Length} levels of {ResBlocks} " +
                "residual blocks: at most 8 levels and 16 blocks a level.");
        int size = ImageSize;
        for (int i = 0; i < ChannelMults.Length - 1; i++)
        {
            if (size % 2 != 0) throw new DiffusionArgumentException(nameof(ChannelMults),
                    $"{string.Join(",", ChannelMults)}: level {i + 1} would halve an odd size " +
                        $"{size}; use fewer levels.");
            size /= 2;
        }
        foreach (var m in ChannelMults)
            if (BaseChannels * m % NormGroups != 0) throw new DiffusionArgumentException(nameof(BaseChannels),
                    $"width {BaseChannels * m} is not divisible by {NormGroups} GroupNorm groups.");
    }
}

/// <summary>
/// The denoising UNet of Ho et al. 2020 (as in diffusers' UNet2DModel): time (and class) embedding added in every
/// residual block (or setting its norm's scale and shift: <see cref="UNetConfig.ScaleShift"/>), self-attention at
/// chosen resolutions, skip connections between levels. A TorchSharp module whose <see cref="Export"/> writes the same
/// arithmetic as ONNX nodes.
/// </summary>
public sealed class UNet : nn.Module<Tensor, Tensor, Tensor?, Tensor>
{
    private readonly UNetConfig _config;
    private readonly TimeEmbedding time_embedding;
    private readonly Embedding? class_embedding;
    private readonly Conv2d conv_in, conv_out;
    private readonly GroupNorm norm_out;
    private readonly ModuleList<ResBlock> down_blocks = new(), up_blocks = new();
    private readonly ModuleDict<SelfAttention> down_attentions = new(), up_attentions = new();
    private readonly ModuleList<Downsample> downsamples = new();
    private readonly ModuleList<Upsample> upsamples = new();
    private readonly ResBlock mid_block_1, mid_block_2;
    private readonly SelfAttention mid_attention;

    /// <summary>The config.</summary>
    public UNetConfig Config => _config;

    /// <summary>
    /// The precision of the activations in <see cref="forward"/>: Float32, or BFloat16 for mixed-precision training
    /// (convolutions, attention and norms run in bfloat16 on bfloat16 copies of the float32 weights; the embeddings,
    /// the attention softmax and the output stay float32). The weights, their gradients and the export are float32
    /// either way.
    /// </summary>
    public ScalarType ComputeType
    {
        get => _computeType;
        set => _computeType = value is ScalarType.Float32 or ScalarType.BFloat16 ? value
            : throw new ArgumentException($"UNet compute type {value}: expected Float32 or BFloat16.");
    }
    private ScalarType _computeType = ScalarType.Float32;

    /// <summary>
    /// Builds the network; its weights come from TorchSharp's default generator (seed it with torch.manual_seed).
    /// </summary>
    public UNet(UNetConfig config) : base(nameof(UNet))
    {
        config.Validate();
        _config = config;
        long ch = config.BaseChannels, emb = 4 * ch, groups = config.NormGroups;
        time_embedding = new TimeEmbedding(ch, emb);
        if (config.NumClasses > 0) class_embedding = nn.Embedding(config.NumClasses + 1, emb);
        conv_in = nn.Conv2d(config.InChannels, ch, 3, padding: 1);

        var skips = new List<long> { ch };
        long width = ch;
        int size = config.ImageSize;
        for (int level = 0; level < config.ChannelMults.Length; level++)
        {
            long outWidth = ch * config.ChannelMults[level];
            for (int i = 0; i < config.ResBlocks; i++)
            {
                down_blocks.Add(new ResBlock(width, outWidth, emb, groups, config.Dropout, config.ScaleShift));
                if (config.AttentionResolutions.Contains(size))
                    down_attentions.Add(((down_blocks.Count - 1).ToString(), new SelfAttention(outWidth, groups)));
                width = outWidth;
                skips.Add(width);
            }
            if (level < config.ChannelMults.Length - 1)
            {
                downsamples.Add(new Downsample(width));
                skips.Add(width);
                size /= 2;
            }
        }

        mid_block_1 = new ResBlock(width, width, emb, groups, config.Dropout, config.ScaleShift);
        mid_attention = new SelfAttention(width, groups);
        mid_block_2 = new ResBlock(width, width, emb, groups, config.Dropout, config.ScaleShift);

        for (int level = config.ChannelMults.Length - 1; level >= 0; level--)
        {
            long outWidth = ch * config.ChannelMults[level];
            for (int i = 0; i < config.ResBlocks + 1; i++)
            {
                long skip = skips[^1];
                skips.RemoveAt(skips.Count - 1);
                up_blocks.Add(new ResBlock(width + skip, outWidth, emb, groups, config.Dropout, config.ScaleShift));
                if (config.AttentionResolutions.Contains(size))
                    up_attentions.Add(((up_blocks.Count - 1).ToString(), new SelfAttention(outWidth, groups)));
                width = outWidth;
            }
            if (level > 0)
            {
                upsamples.Add(new Upsample(width));
                size *= 2;
            }
        }
        norm_out = Layers.GroupNorm(groups, width);
        conv_out = ResBlock.ZeroInit(nn.Conv2d(width, config.OutChannels, 3, padding: 1));

        register_module("time_embedding", time_embedding);
        if (class_embedding is not null) register_module("class_embedding", class_embedding);
        register_module("conv_in", conv_in);
        register_module("down_blocks", down_blocks);
        register_module("down_attentions", down_attentions);
        register_module("downsamples", downsamples);
        register_module("mid_block_1", mid_block_1);
        register_module("mid_attention", mid_attention);
        register_module("mid_block_2", mid_block_2);
        register_module("up_blocks", up_blocks);
        register_module("up_attentions", up_attentions);
        register_module("upsamples", upsamples);
        register_module("norm_out", norm_out);
        register_module("conv_out", conv_out);
    }

    /// <summary>
    /// model_output for x_t [B,C,H,W], timesteps t [B] (float) and, for class-conditional nets, labels [B] (int64).
    /// </summary>
    public override Tensor forward(Tensor x, Tensor t, Tensor? labels)
    {
        var emb = time_embedding.forward(t);
        if (class_embedding is not null)
            emb = emb
                + class_embedding.forward(labels
                    ?? throw new ArgumentException("This UNet is class-conditional: pass class labels (num_classes " +
                        "is the null label)."));
        var h = Layers.Conv(conv_in, x.to(_computeType));
        var skips = new List<Tensor> { h };
        int block = 0;
        for (int level = 0; level < _config.ChannelMults.Length; level++)
        {
            for (int i = 0; i < _config.ResBlocks; i++, block++)
            {
                h = down_blocks[block].forward(h, emb);
                if (down_attentions.TryGetValue(block.ToString(), out var attention)) h = attention.forward(h);
                skips.Add(h);
            }
            if (level < downsamples.Count)
            {
                h = downsamples[level].forward(h);
                skips.Add(h);
            }
        }
        h = mid_block_2.forward(mid_attention.forward(mid_block_1.forward(h, emb)), emb);
        block = 0;
        for (int level = 0; level < _config.ChannelMults.Length; level++)
        {
            for (int i = 0; i < _config.ResBlocks + 1; i++, block++)
            {
                h = up_blocks[block].forward(cat([h, skips[^1]], 1), emb);
                skips.RemoveAt(skips.Count - 1);
                if (up_attentions.TryGetValue(block.ToString(), out var attention)) h = attention.forward(h);
            }
            if (level < upsamples.Count) h = upsamples[level].forward(h);
        }
        return Layers.Conv(conv_out, F.silu(norm_out.forward(h))).to(x.dtype);
    }

    /// <summary>Writes the network between the given graph inputs; returns the output value.</summary>
    public Value Export(OnnxEmitter e, Value x, Value t, Value? labels)
    {
        var g = e.G;
        var emb = time_embedding.Export(e, t);
        if (class_embedding is not null)
            emb = g.Add(emb,
                e.Embedding(class_embedding, labels ?? throw new ArgumentException("class labels input missing")));
        var h = e.Conv(conv_in, x);
        var skips = new List<Value> { h };
        int block = 0;
        for (int level = 0; level < _config.ChannelMults.Length; level++)
        {
            for (int i = 0; i < _config.ResBlocks; i++, block++)
            {
                h = down_blocks[block].Export(e, h, emb);
                if (down_attentions.TryGetValue(block.ToString(), out var attention)) h = attention.Export(e, h);
                skips.Add(h);
            }
            if (level < downsamples.Count)
            {
                h = downsamples[level].Export(e, h);
                skips.Add(h);
            }
        }
        h = mid_block_2.Export(e, mid_attention.Export(e, mid_block_1.Export(e, h, emb)), emb);
        block = 0;
        for (int level = 0; level < _config.ChannelMults.Length; level++)
        {
            for (int i = 0; i < _config.ResBlocks + 1; i++, block++)
            {
                h = up_blocks[block].Export(e, g.Node("Concat", [h, skips[^1]], null, Attr.Int("axis", 1)), emb);
                skips.RemoveAt(skips.Count - 1);
                if (up_attentions.TryGetValue(block.ToString(), out var attention)) h = attention.Export(e, h);
            }
            if (level < upsamples.Count) h = upsamples[level].Export(e, h);
        }
        return e.Conv(conv_out, e.Silu(e.GroupNorm(norm_out, h)));
    }
}
