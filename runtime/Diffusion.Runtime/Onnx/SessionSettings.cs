using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>How ONNX Runtime runs the network: threads, graph optimisation, execution provider.</summary>
public sealed record SessionSettings
{
    /// <summary>Threads inside one operator; 0 lets ONNX Runtime choose (one per physical core).</summary>
    public int IntraOpThreads { get; init; }
    /// <summary>Threads across independent operators; 0 lets ONNX Runtime choose.</summary>
    public int InterOpThreads { get; init; }
    /// <summary>
    /// Keep freed CPU tensors in ONNX Runtime's arena for reuse (its default, fastest for a long-running loop), or hand
    /// them back to the allocator (false) so that a server's memory returns towards idle after a burst of large
    /// batches.
    /// </summary>
    public bool CpuMemoryArena { get; init; } = true;
    /// <summary>Graph optimisation level.</summary>
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;
    /// <summary>CPU or CUDA device.</summary>
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;
    /// <summary>
    /// Extra CUDA provider options (ONNX Runtime's names: gpu_mem_limit, arena_extend_strategy, cudnn_conv_algo_search,
    /// do_copy_in_default_stream, …), passed through as they are.
    /// </summary>
    public IReadOnlyDictionary<string, string> CudaOptions { get; init; } = new Dictionary<string, string>();
    /// <summary>
    /// Record the network once as a CUDA graph and replay it at every step (ORT's <c>enable_cuda_graph</c>). A replay
    /// reads and writes fixed device addresses, so the runtime then binds device buffers once per generation and
    /// copies x_t in and the output out around each replay.
    /// </summary>
    public bool CudaGraphs { get; init; }
    /// <summary>
    /// Tests only: stage the bound buffers through allocator-owned twins and explicit copies even on the CPU — the
    /// CUDA-graph path's data flow.
    /// </summary>
    internal bool StageThroughDeviceBuffers { get; init; }

    /// <summary>
    /// ONNX Runtime's own log lines for this session (stderr, coloured). Fatal by default: every failure reaches the
    /// caller as an exception with ORT's message, so its log would only repeat it ahead of the caller's own report.
    /// </summary>
    public OrtLoggingLevel LogSeverity { get; init; } = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;

    /// <summary>
    /// Record ONNX Runtime's profile (every node's time and tensor shapes, Chrome trace JSON) under this path prefix;
    /// <c>InferenceSession.EndProfiling</c> writes it and returns its file. Null: no profiling (the default).
    /// </summary>
    public string? ProfilePrefix { get; init; }

    /// <summary>
    /// ONNX Runtime session configuration entries (its <c>session.*</c> keys, e.g. <c>session.disable_prepacking</c>,
    /// <c>session.intra_op.allow_spinning</c>), passed through as they are.
    /// </summary>
    public IReadOnlyDictionary<string, string> ConfigEntries { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// Builds ONNX Runtime's options; CUDA on the CPU build, or without its NVIDIA libraries, becomes a clear
    /// <see cref="DiffusionException"/>.
    /// </summary>
    public SessionOptions CreateOptions()
    {
        return Create(out _); // only sessions that bind buffers through ModelBinding need the placement
    }

    /// <summary>
    /// Builds ONNX Runtime's options, and says where the bound buffers of a session made with them should live.
    /// </summary>
    internal SessionOptions Create(out BufferPlacement placement)
    {
        OrtLibrary.EnsureLoaded();
        if (!Device.IsCuda && CudaSettingGiven() is { } cudaOnly)
            throw new DiffusionArgumentException(cudaOnly,
                $"applies only to a CUDA device, and the device is {Device}.");
        var options = new SessionOptions
        {
            IntraOpNumThreads = IntraOpThreads,
            InterOpNumThreads = InterOpThreads,
            GraphOptimizationLevel = OptimizationLevel,
            ExecutionMode = InterOpThreads > 1 ? ExecutionMode.ORT_PARALLEL : ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = LogSeverity,
            EnableCpuMemArena = CpuMemoryArena,
        };
        foreach (var (key, value) in ConfigEntries) options.AddSessionConfigEntry(key, value);
        if (ProfilePrefix is not null)
        {
            options.ProfileOutputPathPrefix = ProfilePrefix; // first: enabling reads the prefix
            options.EnableProfiling = true;
        }
        placement = StageThroughDeviceBuffers ? BufferPlacement.StagedOnCpu() : BufferPlacement.Managed;
        if (!Device.IsCuda) return options;
        var values = new Dictionary<string, string>(CudaOptions);
        if (CudaGraphs) values["enable_cuda_graph"] = "1";
        try
        {
            placement = BufferPlacement.ForCudaDevice(CudaProvider.Append(options, Device, values), CudaGraphs);
            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    /// <summary>The first CUDA-only setting that is given, by name, or null.</summary>
    private string? CudaSettingGiven() =>
        CudaGraphs ? nameof(CudaGraphs)
        : CudaOptions.Count > 0 ? nameof(CudaOptions)
        : null;
}
