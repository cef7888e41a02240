using Diffusion.Trainer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

/// <summary>TorchSharp loads and computes here; on a libstdc++ older than it needs, through the patched copy.</summary>
[Collection(DefaultGenerator.Name)]
public class TorchSharpSetupTests
{
    [Fact]
    public void Torchsharp_runs_a_linear_layer_and_its_backward_pass()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(0);
        var linear = nn.Linear(3, 1);
        var x = tensor(new[] { 1f, 2f, 3f, -1f, 0f, 4f }, [2, 3]);
        linear.forward(x).sum().backward(); // ∂/∂W of Σ(xWᵀ + b) = Σ over rows of x
        Assert.Equal([0f, 2f, 7f], linear.weight!.grad!.data<float>().ToArray());
        Assert.Equal(2f, linear.bias!.grad!.item<float>());
        Assert.StartsWith("TorchSharp 0.107", TorchSetup.Describe());
    }

    [Fact]
    public void The_libstdcxx_stand_in_is_loaded_exactly_where_the_system_lacks_glibcxx_3_4_32()
    {
        _ = zeros(1); // make sure the native library is loaded
        var maps = File.ReadAllText("/proc/self/maps");
        var libstdcxx = maps.Split('\n').Select(l =>
            l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "")
            .First(p => p.Contains("libstdc++.so.6", StringComparison.Ordinal));
        bool systemHasIt = File.ReadAllText(libstdcxx, System.Text.Encoding.Latin1).Contains("GLIBCXX_3.4.32",
            StringComparison.Ordinal);
        Assert.Contains("libLibTorchSharp.so", maps);
        Assert.Equal(!systemHasIt, maps.Contains("libdiffusion_stdcxx_compat.so", StringComparison.Ordinal));
    }

    [Fact]
    public void Thread_counts_are_bounded()
    {
        Assert.Equal(Environment.ProcessorCount, TorchSetup.SetThreads(0));
        Assert.Contains("100000",
            Assert.Throws<DiffusionArgumentException>(() => TorchSetup.SetThreads(100000)).Message);
    }
}
