using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>How ONNX Runtime runs the network: threads, graph optimisation, execution provider.</summary>
public sealed record SessionSettings
{
    /// <summary>Threads inside one operator; 0 lets ONNX Runtime choose (one per physical core).</summary>
    public int IntraOpThreads { get; init; }
    /// <summary>Threads across independent operators; 0 lets ONNX Runtime choose.</summary>
    public int InterOpThreads { get; init; }
    /// <summary>Graph optimisation level.</summary>
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;
    /// <summary>CPU or CUDA device.</summary>
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;
    /// <summary>Extra CUDA provider options (ONNX Runtime's names: gpu_mem_limit, arena_extend_strategy, cudnn_conv_algo_search, do_copy_in_default_stream, …).</summary>
    public IReadOnlyDictionary<string, string> CudaOptions { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// ONNX Runtime's own log lines for this session (stderr, coloured). Fatal by default: every failure reaches the
    /// caller as an exception with ORT's message, so its log would only repeat it ahead of the caller's own report.
    /// </summary>
    public OrtLoggingLevel LogSeverity { get; init; } = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;

    /// <summary>Builds ONNX Runtime's options; CUDA on a build without it becomes a clear <see cref="DiffusionException"/>.</summary>
    public SessionOptions CreateOptions()
    {
        OrtLibrary.EnsureLoaded();
        var options = new SessionOptions
        {
            IntraOpNumThreads = IntraOpThreads,
            InterOpNumThreads = InterOpThreads,
            GraphOptimizationLevel = OptimizationLevel,
            ExecutionMode = InterOpThreads > 1 ? ExecutionMode.ORT_PARALLEL : ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = LogSeverity,
        };
        if (!Device.IsCuda) return options;
        try
        {
            using var cuda = new OrtCUDAProviderOptions();
            var values = new Dictionary<string, string>(CudaOptions) { ["device_id"] = Device.DeviceId.ToString() };
            cuda.UpdateOptions(values);
            options.AppendExecutionProvider_CUDA(cuda);
            return options;
        }
        catch (OnnxRuntimeException e)
        {
            options.Dispose();
            throw new DiffusionException(
                $"Device {Device}: ONNX Runtime could not enable its CUDA execution provider ({e.Message.Trim()}). " +
                $"This ONNX Runtime ({OrtLibrary.Path}) is a CPU build. To run on a GPU, build with -p:OrtNuGetPackage=Microsoft.ML.OnnxRuntime.Gpu " +
                $"where a NuGet feed serves it, or point {OrtLibrary.EnvironmentVariable} at the libonnxruntime.so of an ONNX Runtime GPU build " +
                $"(version {typeof(OrtEnv).Assembly.GetName().Version?.ToString(3)} or later, with its CUDA and cuDNN).", e);
        }
    }
}
