using System.Diagnostics;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Nn;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

[Collection(DefaultGenerator.Name)]
public class OnnxCheckerTests
{
    [Fact]
    public void Onnx_checker_accepts_the_exported_unet_with_full_check()
    {
        random.manual_seed(1);
        using var net = new UNet(new UNetConfig
        {
            BaseChannels = 16, ChannelMults = [1, 2, 2], ResBlocks = 1, NumClasses = 10,
        });
        var path = Path.Combine(TestFolders.Create("onnx-checker"), "unet.onnx");
        File.WriteAllBytes(path, UNetExporter.ToOnnx(net, new DiffusionConfig { PredictionType = "v_prediction" }));
        var start = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var a in new[]
        {
            "-c", "import sys, onnx, json; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); " +
            "c = json.loads({p.key: p.value for p in m.metadata_props}['diffusion.config']); print([i.name for i in " +
                "m.graph.input], c['prediction_type'], c['num_classes'], c['sample_size'])", path,
        })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, stderr);
        Assert.Equal("['sample', 'timestep', 'class_labels'] v_prediction 10 [28, 28]", stdout.Trim());
    }
}
