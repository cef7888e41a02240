using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// Where a session's bound buffers live. The samplers always read and write host memory: managed arrays on the CPU;
/// on CUDA page-locked (pinned) memory where the provider offers an allocator for it, so that ORT's copies to and
/// from the GPU are direct DMA. With CUDA graphs the network's inputs and output must also stay at fixed device
/// addresses: then <see cref="Device"/> names device memory, the binding owns a device twin of every buffer, and
/// copies between the two around each run.
/// </summary>
internal sealed class BufferPlacement
{
    private BufferPlacement(OrtMemoryInfo? host, OrtMemoryInfo? device)
    {
        Host = host;
        Device = device;
    }

    /// <summary>Memory for the host buffers (null: managed arrays).</summary>
    public OrtMemoryInfo? Host { get; }

    /// <summary>Memory for device twins of the bound buffers (null: the host buffers are bound directly).</summary>
    public OrtMemoryInfo? Device { get; }

    /// <summary>Managed arrays, bound directly (the CPU, and the fallback).</summary>
    public static BufferPlacement Managed => new(null, null);

    /// <summary>
    /// Managed arrays with CPU-memory twins and explicit copies: the CUDA-graph data flow, runnable without a GPU.
    /// </summary>
    public static BufferPlacement StagedOnCpu() => new(null, OrtMemoryInfo.DefaultInstance);

    /// <summary>
    /// The CUDA provider's device: its host-accessible (pinned) memory, and with graphs its device memory (both ORT's
    /// own descriptions).
    /// </summary>
    public static BufferPlacement ForCudaDevice(OrtEpDevice device, bool graphs) =>
        new(device.GetMemoryInfo(OrtDeviceMemoryType.HOST_ACCESSIBLE), graphs
            ? device.GetMemoryInfo(OrtDeviceMemoryType.DEFAULT) : null);
}
