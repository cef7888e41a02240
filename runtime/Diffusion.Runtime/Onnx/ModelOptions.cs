namespace Diffusion.Runtime.Onnx;

/// <summary>How to load a model: session settings, and for foreign models the config and input/output names.</summary>
public sealed record ModelOptions
{
    /// <summary>ONNX Runtime settings.</summary>
    public SessionSettings Session { get; init; } = new();
    /// <summary>
    /// The config to use; when given it overrides the model's <c>diffusion.config</c> metadata and a
    /// scheduler_config.json beside it.
    /// </summary>
    public DiffusionConfig? Config { get; init; }
    /// <summary>Where <see cref="Config"/> came from (a file name), for messages and <c>info</c>.</summary>
    public string? ConfigSource { get; init; }
    /// <summary>Name of the x_t input (default: sample).</summary>
    public string? SampleInput { get; init; }
    /// <summary>Name of the timestep input (default: timestep).</summary>
    public string? TimestepInput { get; init; }
    /// <summary>Name of the class-label input (default: class_labels, if present).</summary>
    public string? ClassLabelsInput { get; init; }
    /// <summary>Name of the output (default: model_output, else out_sample, else the only output).</summary>
    public string? OutputName { get; init; }
}
