using Diffusion.OnnxGraph;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Nn;
using Google.Protobuf;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

/// <summary>
/// export --onnx at float32: a UNet read back from an exported file (architecture from the weights, group count from
/// the graph) is the network that was exported, weight for weight, and writes the same bytes again; a file whose
/// graph computes something its weights do not is refused, and so are files that are not this trainer's UNets.
/// </summary>
[Collection(DefaultGenerator.Name)]
public class UNetImporterTests
{
    private static UNetConfig Small => new()
    {
        BaseChannels = 16, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [14], NumClasses = 3,
        NormGroups = 4, ScaleShift = true, Dropout = 0,
    };

    public static TheoryData<UNetConfig> Architectures => new()
    {
        Small,
        new UNetConfig
        {
            BaseChannels = 8, ChannelMults = [1, 2, 3], ResBlocks = 2, AttentionResolutions = [7, 28], NumClasses = 0,
            NormGroups = 2, LearnSigma = true, Dropout = 0, InChannels = 3,
        },
    };

    private static byte[] Export(UNetConfig config, int seed)
    {
        random.manual_seed(seed);
        using var net = new UNet(config);
        using var g = new Generator((ulong)seed);
        ExportParityTests.RandomizeAllWeights(net, g);
        return UNetExporter.ToOnnx(net, new DiffusionConfig { PredictionType = "v_prediction" });
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void A_read_back_network_is_the_exported_one_and_writes_the_same_file(UNetConfig config)
    {
        var bytes = Export(config, 5);
        var (net, diffusion) = UNetImporter.Read(bytes, "net.onnx");
        using (net)
        {
            var c = net.Config;
            Assert.Equal((config.InChannels, config.ImageSize, config.BaseChannels, config.ResBlocks, config.NumClasses,
                    config.NormGroups, config.ScaleShift, config.LearnSigma),
                (c.InChannels, c.ImageSize, c.BaseChannels, c.ResBlocks, c.NumClasses, c.NormGroups, c.ScaleShift,
                    c.LearnSigma));
            Assert.Equal(config.ChannelMults, c.ChannelMults);
            Assert.Equal(config.AttentionResolutions.Order(), c.AttentionResolutions.Order());
            Assert.Equal("v_prediction", diffusion.PredictionType);
            // weight for weight: the parameters of a network seeded alike and randomized alike
            random.manual_seed(5);
            using var original = new UNet(config);
            using var g = new Generator(5);
            ExportParityTests.RandomizeAllWeights(original, g);
            var expected = original.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, parameter) in net.named_parameters())
                Assert.True(expected[name].eq(parameter).all().item<bool>(), name);
        }
        var (again, difference) = UNetImporter.Reexport(bytes, "net.onnx");
        Assert.Equal(0, difference);
        Assert.Equal(bytes, again);
    }

    [Fact]
    public void A_graph_that_computes_what_its_weights_do_not_is_refused()
    {
        var config = Small;
        var proto = Onnx.ModelProto.Parser.ParseFrom(Export(config, 6));
        // one GroupNorm's epsilon changed: the weights are the same, the arithmetic is not
        var norm = proto.Graph.Node.First(n => n.OpType == "InstanceNormalization");
        norm.Attribute.Single(a => a.Name == "epsilon").F = 0.5f;
        var e = Assert.Throws<DiffusionException>(() => UNetImporter.Reexport(proto.ToByteArray(), "edited.onnx"));
        Assert.Contains("edited.onnx: written again from its weights, the network's output differs from the file's by",
            e.Message);
        Assert.Contains("it is not rewritten", e.Message);
        // a graph ONNX Runtime cannot load is one line too
        norm.OpType = "NoSuchOperator";
        Assert.Contains("edited.onnx: ONNX Runtime cannot run it to compare",
            Assert.Throws<DiffusionException>(() => UNetImporter.Reexport(proto.ToByteArray(), "edited.onnx")).Message);
    }

    [Fact]
    public void Files_that_are_not_this_trainers_unets_are_refused_in_one_line()
    {
        var config = Small;
        var bytes = Export(config, 7);
        string Refusal(Action<Onnx.ModelProto> edit)
        {
            var proto = Onnx.ModelProto.Parser.ParseFrom(bytes);
            edit(proto);
            return Assert.Throws<DiffusionException>(() => UNetImporter.Read(proto.ToByteArray(), "x.onnx")).Message;
        }
        Assert.Contains("x.onnx: not an ONNX model",
            Assert.Throws<DiffusionException>(() => UNetImporter.Read([1, 2, 3, 4, 5, 250], "x.onnx")).Message);
        Assert.Contains("x.onnx: no diffusion.config metadata", Refusal(p => p.MetadataProps.Clear()));
        Assert.Contains("no initializer 'conv_in.weight'", Refusal(p =>
            p.Graph.Initializer.Remove(p.Graph.Initializer.Single(i => i.Name == "conv_in.weight"))));
        Assert.Contains("no initializer for the parameter 'mid_block_1.norm2.bias'", Refusal(p =>
            p.Graph.Initializer.Remove(p.Graph.Initializer.Single(i => i.Name == "mid_block_1.norm2.bias"))));
        Assert.Contains("x.onnx: Tensor 'mid_block_1.norm2.bias' holds Int64, not Float.", Refusal(p =>
            p.Graph.Initializer.Single(i => i.Name == "mid_block_1.norm2.bias").DataType = 7));
        Assert.Contains("'conv_out.bias' has shape [5] where the architecture read from the file needs [1]",
            Refusal(p =>
            {
                var bias = p.Graph.Initializer.Single(i => i.Name == "conv_out.bias");
                bias.Dims[0] = 5;
                bias.RawData = ByteString.CopyFrom(new byte[20]);
            }));
        // shapes the file does not back with values would build a network far larger than the file
        Assert.Contains("'conv_in.weight' is not a float32 tensor of rank 4 whose values the file holds", Refusal(p =>
        {
            var weight = p.Graph.Initializer.Single(i => i.Name == "conv_in.weight");
            weight.Dims[0] = 8192;
        }));
        Assert.Contains("the architecture its weights imply is not one this trainer builds", Refusal(p =>
        {
            // four levels of one block at 28 pixels: the third halving meets the odd 7
            foreach (var i in new[] { 2, 3 })
                p.Graph.Initializer.Add(Tensors.Float($"down_blocks.{i}.conv1.weight", new float[32 * 32 * 9], 32, 32,
                    3, 3));
            foreach (var i in Enumerable.Range(4, 4))
                p.Graph.Initializer.Add(Tensors.Float($"up_blocks.{i}.conv1.weight", new float[1], 1, 1, 1, 1));
            foreach (var i in new[] { 1, 2 })
                p.Graph.Initializer.Add(Tensors.Float($"downsamples.{i}.conv.weight", new float[1], 1, 1, 1, 1));
        }));
        Assert.Contains("the architecture its weights imply is not one this trainer builds", Refusal(p =>
        {
            // 5 groups of 16 channels
            var target = p.Graph.Initializer.Single(i => i.Name == p.Graph.Node.First(n => n.OpType == "Reshape"
                && n.Input[0] == p.Graph.Node.First(c => c.OpType == "Conv").Output[0]).Input[1]);
            target.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes<long>(
                [0, 5, -1, 0]));
        }));
        Assert.Contains("no GroupNorm reshape of conv_in's output", Refusal(p =>
        {
            foreach (var n in p.Graph.Node.Where(n => n.OpType == "Reshape")) n.OpType = "Identity";
        }));
        Assert.Contains("the model is quantized", Refusal(p => p.Graph.Node[0].OpType = "QLinearConv"));
    }
}
