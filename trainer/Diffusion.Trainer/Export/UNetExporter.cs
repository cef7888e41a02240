using Diffusion.OnnxGraph;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Nn;

namespace Diffusion.Trainer.Export;

/// <summary>
/// Writes a UNet as an ONNX model that follows the model contract (README, "The model contract"): inputs, names,
/// dynamic batch, metadata.
/// </summary>
public static class UNetExporter
{
    /// <summary>The ONNX bytes of <paramref name="net"/> with its diffusion config in the metadata.</summary>
    public static byte[] ToOnnx(UNet net, DiffusionConfig config)
    {
        var c = net.Config;
        if (config.LearnsVariance && !c.LearnSigma)
            throw new DiffusionException("export config: variance_type learned_range needs a network trained with " +
                "--learn-sigma (it outputs v).");
        config = config with
        {
            SampleSize = [c.ImageSize, c.ImageSize], InChannels = c.InChannels, NumClasses = c.NumClasses,
            VarianceType = c.LearnSigma ? "learned_range" : config.VarianceType,
        };
        config.Validate("export config");
        var g = new GraphBuilder("unet");
        var e = new OnnxEmitter(g, net);
        var x = g.Input("sample", OnnxEmitter.Float, "batch", c.InChannels, c.ImageSize, c.ImageSize);
        var t = g.Input("timestep", OnnxEmitter.Float, "batch");
        Value? labels = c.NumClasses > 0 ? g.Input("class_labels", Onnx.TensorProto.Types.DataType.Int64, "batch")
            : null;
        g.Output(net.Export(e, x, t, labels), "model_output", OnnxEmitter.Float, "batch", c.OutChannels, c.ImageSize,
            c.ImageSize);
        return new ModelBuilder(g)
            .Doc($"Diffusion for .NET UNet: base {c.BaseChannels}, " +
                $"mults {string.Join(",", c.ChannelMults)}, {c.ResBlocks} res blocks, attention " +
                    $"at {string.Join(",", c.AttentionResolutions)}{(c.ScaleShift ? ", scale-shift conditioning" : "")}" +
                $"{(c.LearnSigma ? ", learned variance" : "")}.")
            .Metadata(DiffusionConfig.MetadataKey, config.ToJson())
            .ToBytes();
    }

    /// <summary>Writes the model to <paramref name="path"/> atomically.</summary>
    public static void Save(UNet net, DiffusionConfig config, string path)
    {
        var bytes = ToOnnx(net, config);
        AtomicFile.Write(path, s => s.Write(bytes));
    }
}
