namespace Diffusion.Runtime.Onnx;

/// <summary>How to load a model: session settings, and for foreign models the config and input/output names.</summary>
public sealed record ModelOptions
{
    /// <summary>ONNX Runtime settings.</summary>
    public SessionSettings Session { get; init; } = new();
    /// <summary>Config to use when the model carries no <c>diffusion.config</c> and no scheduler_config.json lies beside it; overrides neither.</summary>
    public DiffusionConfig? Config { get; init; }
    /// <summary>Name of the x_t input (default: sample).</summary>
    public string? SampleInput { get; init; }
    /// <summary>Name of the timestep input (default: timestep).</summary>
    public string? TimestepInput { get; init; }
    /// <summary>Name of the class-label input (default: class_labels, if present).</summary>
    public string? ClassLabelsInput { get; init; }
    /// <summary>Name of the output (default: model_output, else out_sample, else the only output).</summary>
    public string? OutputName { get; init; }
}
