using System.CommandLine;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Pipelines;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Cli.Commands;

/// <summary>The options every model-loading command shares, and loading the model from them.</summary>
public sealed class ModelArguments
{
    /// <summary>--model.</summary>
    public Option<string?> Model { get; } = new("--model", "-m")
    {
        Description = "ONNX model file, a diffusers / Optimum export folder, or a text-to-image folder " +
            "(model_index.json, tokenizer/, text_encoder/, unet/, vae_decoder/); default: the bundled model.",
    };
    /// <summary>--device.</summary>
    public Option<string> Device { get; } = new("--device")
    {
        Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu",
    };
    /// <summary>--threads.</summary>
    public Option<int> Threads { get; } = new("--threads")
    {
        Description = "ONNX Runtime intra-op threads (0 = one per core).", DefaultValueFactory = _ => 0,
    };
    /// <summary>--inter-threads.</summary>
    public Option<int> InterThreads { get; } = new("--inter-threads")
    {
        Description = "ONNX Runtime inter-op threads (0 = its default; > 1 runs independent nodes in parallel).",
            DefaultValueFactory = _ => 0,
    };
    /// <summary>--graph-opt.</summary>
    public Option<string> GraphOptimization { get; } = new("--graph-opt")
    {
        Description = "ONNX Runtime graph optimisation: none, basic, extended or all.", DefaultValueFactory = _ =>
            "all",
    };
    /// <summary>--cuda-option.</summary>
    public Option<string[]> CudaOptions { get; } = new("--cuda-option")
    {
        Description = "CUDA provider option KEY=VALUE (repeatable), e.g. gpu_mem_limit=4294967296.",
            AllowMultipleArgumentsPerToken = false,
    };
    /// <summary>--cuda-graphs.</summary>
    public Option<bool> CudaGraphs { get; } = new("--cuda-graphs")
    {
        Description = "Capture the network as a CUDA graph and replay it every step (device buffers " +
            "bound once per generation).",
    };
    /// <summary>--config.</summary>
    public Option<string?> Config { get; } = new("--config")
    {
        Description = "scheduler_config.json to use; overrides the model's diffusion.config metadata and a " +
            "scheduler_config.json beside it.",
    };
    /// <summary>--sample-input.</summary>
    public Option<string?> SampleInput { get; } = new("--sample-input")
    {
        Description = "Name of the model's x_t input (default: sample).",
    };
    /// <summary>--timestep-input.</summary>
    public Option<string?> TimestepInput { get; } = new("--timestep-input")
    {
        Description = "Name of the model's timestep input (default: timestep).",
    };
    /// <summary>--class-input.</summary>
    public Option<string?> ClassInput { get; } = new("--class-input")
    {
        Description = "Name of the model's class-label input (default: class_labels).",
    };
    /// <summary>--output-name.</summary>
    public Option<string?> OutputName { get; } = new("--output-name")
    {
        Description = "Name of the model's output (default: model_output, else out_sample).",
    };

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var o in new Option[]
        {
            Model, Device, TextEncoderDevice, Threads, InterThreads, GraphOptimization, CudaOptions,
                CudaGraphs, Config, SampleInput, TimestepInput, ClassInput, OutputName,
        })
            command.Options.Add(o);
    }

    /// <summary>The closed-form Gaussian reference model that ships with the app.</summary>
    public static string GaussianModelPath =>
        Path.Combine(AppContext.BaseDirectory, "models", "gaussian", "gaussian.onnx");

    /// <summary>The trained Fashion-MNIST model, when it ships.</summary>
    public static string FashionMnistModelPath =>
        Path.Combine(AppContext.BaseDirectory, "models", "fashion-mnist", "model.onnx");

    /// <summary>The default model: the trained Fashion-MNIST UNet, else the closed-form Gaussian model.</summary>
    public static string BundledModelPath => File.Exists(FashionMnistModelPath) ? FashionMnistModelPath
        : GaussianModelPath;

    /// <summary>Whether <paramref name="path"/> is a text-to-image folder (model_index.json and a text encoder).</summary>
    public static bool IsTextToImage(string? path) => path is not null && TextToImagePipeline.IsFolder(path);

    /// <summary>--text-encoder-device.</summary>
    public Option<string?> TextEncoderDevice { get; } = new("--text-encoder-device")
    {
        Description = "A text-to-image folder's text encoder on another device than --device (it runs once per " +
            "request), e.g. cpu.",
    };

    /// <summary>The model path the options name (the bundled model by default).</summary>
    public string PathOf(ParseResult p) => p.GetValue(Model) ?? BundledModelPath;

    /// <summary>
    /// Loads the text-to-image folder the options name (on this rank's device, given the run's ranks).
    /// </summary>
    public TextToImagePipeline LoadPipeline(ParseResult p, Ranks? ranks = null)
    {
        var settings = Settings(p, ranks);
        return TextToImagePipeline.Load(PathOf(p), new PipelineOptions
        {
            Session = settings,
            TextEncoder = p.GetValue(TextEncoderDevice) is { } device
                ? settings with { Device = ExecutionDevice.Parse(device), CudaGraphs = false } : null,
        });
    }

    /// <summary>
    /// The shapes of the images the model the options name makes and of its x_T (a text-to-image folder's: latents, at
    /// the folder's default size).
    /// </summary>
    public (ImageShape Images, ImageShape Noise) Shapes(ParseResult p)
    {
        if (!IsTextToImage(PathOf(p)))
        {
            using var m = Load(p);
            return (m.Shape, m.Shape);
        }
        using var pipeline = LoadPipeline(p);
        return (pipeline.ImageShapeOf(new Runtime.Generation.GenerationRequest()), pipeline.Unet.Shape);
    }

    /// <summary>
    /// Loads the model the options name (on this rank's device, given the run's ranks), or the one at
    /// <paramref name="path"/> with the same settings; <paramref name="adjust"/> changes the session's settings.
    /// </summary>
    public DiffusionModel Load(ParseResult p, Ranks? ranks = null, string? path = null,
        Func<SessionSettings, SessionSettings>? adjust = null)
    {
        path ??= PathOf(p);
        if (IsTextToImage(path))
            throw new DiffusionException($"--model '{path}' is a text-to-image folder; this command takes a pixel " +
                "model (sample, img2img, inpaint, info, noise, mask and bench-runtime take the folder).");
        var settings = Settings(p, ranks);
        if (adjust is not null) settings = adjust(settings);
        DiffusionConfig? config = null;
        if (p.GetValue(Config) is { } configPath)
        {
            config = DiffusionConfig.Parse(
                InputFile.ReadAllText(configPath, InputFile.MaxConfigBytes, $"--config '{configPath}'"), configPath);
        }
        return DiffusionModel.Load(path, new ModelOptions
        {
            Session = settings,
            Config = config,
            ConfigSource = p.GetValue(Config) is { } c ? $"--config {c}" : null,
            SampleInput = p.GetValue(SampleInput),
            TimestepInput = p.GetValue(TimestepInput),
            ClassLabelsInput = p.GetValue(ClassInput),
            OutputName = p.GetValue(OutputName),
        });
    }

    /// <summary>The session settings the options describe, for this rank of <paramref name="ranks"/>.</summary>
    private SessionSettings Settings(ParseResult p, Ranks? ranks)
    {
        int maxThreads = Math.Max(64, 4 * Environment.ProcessorCount);
        foreach (var (option, value) in new[]
        {
            (Threads, p.GetValue(Threads)), (InterThreads, p.GetValue(InterThreads)),
        })
            if (value < 0 || value > maxThreads)
                throw new DiffusionArgumentException(option.Name,
                    $"{value}: expected 0 (ONNX Runtime's choice) up to {maxThreads}.");
        var device = ExecutionDevice.Parse(p.GetValue(Device)!);
        var level = p.GetValue(GraphOptimization)!.ToLowerInvariant() switch
        {
            "none" => GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all" => GraphOptimizationLevel.ORT_ENABLE_ALL,
            var other =>
                throw new DiffusionArgumentException("--graph-opt",
                    $"'{other}': expected none, basic, extended or all."),
        };
        var cudaOptions = new Dictionary<string, string>();
        foreach (var pair in p.GetValue(CudaOptions) ?? [])
        {
            var eq = pair.IndexOf('=');
            if (eq <= 0) throw new DiffusionArgumentException("--cuda-option", $"'{pair}': expected KEY=VALUE.");
            cudaOptions[pair[..eq].Trim()] = pair[(eq + 1)..].Trim();
        }
        var settings = new SessionSettings
        {
            Device = device,
            IntraOpThreads = p.GetValue(Threads),
            InterOpThreads = p.GetValue(InterThreads),
            OptimizationLevel = level,
            CudaOptions = cudaOptions,
            CudaGraphs = p.GetValue(CudaGraphs),
        };
        return ranks?.ForThisRank(settings, deviceIndexGiven: p.GetValue(Device)!.Contains(':')) ?? settings;
    }
}
