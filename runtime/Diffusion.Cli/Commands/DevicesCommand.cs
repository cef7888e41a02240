using System.CommandLine;
using Diffusion.Runtime.Onnx;
using Spectre.Console;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>devices</c>: which ONNX Runtime this build runs on, and on a GPU build each NVIDIA library its CUDA provider
/// needs (where it was found, or why not) and the GPUs the provider reports, as <c>cuda:N</c>. Exits with a failure
/// where a GPU build cannot use CUDA, so that a script (the GPU bundle's <c>run-gpu.sh --check</c>) can tell.
/// </summary>
public static class DevicesCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var command = new Command("devices",
            "Show the ONNX Runtime build, the CUDA libraries its CUDA provider needs (and where they were found) " +
                "and the GPUs it sees.");
        command.SetAction((_, _) => console.Guard(() =>
        {
            console.Out.WriteLine($"ONNX Runtime {OrtLibrary.Version}: {OrtLibrary.Package}, {OrtLibrary.Path}");
            console.Out.WriteLine($"cpu: {Environment.ProcessorCount} logical cores");
            if (CudaProvider.Library is not { } provider)
            {
                console.Out.WriteLine("cuda: not in this build (build with -p:OrtGpu=true, or use the GPU bundle)");
                return Task.FromResult(ExitCodes.Ok);
            }
            console.Out.WriteLine($"CUDA provider: {provider}");
            var table = new Table().AddColumns("library", "what", "loaded from");
            foreach (var d in CudaLibraries.Load(provider))
                table.AddPlainRow(d.Name, d.What ?? "", d.Loaded ? d.Source! : d.Problem is null ? "not found"
                    : $"{d.Source}: not loadable ({d.Problem})");
            console.Ansi.Write(table);
            var gpus = CudaProvider.Devices(ExecutionDevice.Cuda(0)); // a missing library throws: one line, failure
            for (int i = 0; i < gpus.Count; i++)
            {
                var hardware = gpus[i].HardwareDevice;
                console.Out.WriteLine($"cuda:{i}: {hardware.Vendor} device 0x{hardware.DeviceId:x4} " +
                    $"({string.Join(", ", hardware.Metadata.Entries.Select(kv => $"{kv.Key}={kv.Value}"))})");
            }
            if (gpus.Count > 0) return Task.FromResult(ExitCodes.Ok);
            console.Error.WriteLine("error: the CUDA provider reports no GPU (check nvidia-smi, the driver and " +
                "CUDA_VISIBLE_DEVICES).");
            return Task.FromResult(ExitCodes.Failure);
        }));
        return command;
    }
}
