using Diffusion.Runtime.Imaging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Onnx;

/// <summary>How the graph declares its timestep input's shape.</summary>
public enum TimestepLayout
{
    /// <summary>[B]: one (possibly fractional) timestep per image — the model contract.</summary>
    PerImage,
    /// <summary>A scalar or [1]: one timestep for the whole batch.</summary>
    Shared,
}

/// <summary>
/// A diffusion network loaded into ONNX Runtime, with everything the samplers need to know about it: its config,
/// noise schedule, image shape, and which inputs and outputs play which role. Validates the graph against the model
/// contract on load, so a wrong file fails here with a clear message rather than mid-sampling.
/// </summary>
public sealed class DiffusionModel : IDisposable
{
    private readonly InferenceSession _session;

    /// <summary>The ONNX Runtime session; <see cref="ObjectDisposedException"/> once the model is disposed.</summary>
    public InferenceSession Session
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _session;
        }
    }
    /// <summary>Where the model came from (a path or a description), for messages.</summary>
    public string Source { get; }
    /// <summary>The model's config.</summary>
    public DiffusionConfig Config { get; }
    /// <summary>Where the config came from: metadata, scheduler_config.json or options.</summary>
    public string ConfigSource { get; }
    /// <summary>The noise schedule built from <see cref="Config"/>.</summary>
    public NoiseSchedule Schedule { get; }
    /// <summary>Image channels C: the channels of x the samplers walk (and of the output's prediction).</summary>
    public int Channels { get; }
    /// <summary>
    /// Channels E the sample input reads after x's — C + E in all —, the same on both sides of guidance: diffusers'
    /// inpainting UNet (in_channels 9 = 4 latent + 1 mask + 4 masked-image latents), depth-to-image (4 + 1). 0 for
    /// every other model. Told apart by the graph: a static output channel count below the input's.
    /// </summary>
    public int ConcatChannels { get; }
    /// <summary>Image height H.</summary>
    public int Height { get; }
    /// <summary>Image width W.</summary>
    public int Width { get; }
    /// <summary>
    /// The output's channels: C, and 2C for a learned variance (the prediction, then v: see
    /// <see cref="DiffusionConfig.VarianceType"/>).
    /// </summary>
    public int OutputChannels => Config.LearnsVariance ? 2 * Channels : Channels;
    /// <summary>C·H·W, the values of one image.</summary>
    public int ImageSize => Channels * Height * Width;
    /// <summary>The image shape [C, H, W] of the config (or the graph).</summary>
    public ImageShape Shape => new(Channels, Height, Width);
    /// <summary>Name of the x_t input.</summary>
    public string SampleInput { get; }
    /// <summary>Name of the timestep input.</summary>
    public string TimestepInput { get; }
    /// <summary>How the timestep input's shape is declared.</summary>
    public TimestepLayout TimestepLayout { get; }
    /// <summary>
    /// The timestep input's element type: float32 or float16 (fractional timesteps kept), int64 or int32 (rounded).
    /// </summary>
    public TensorElementType TimestepElementType { get; }
    /// <summary>The x_t input's element type: float32, or float16 (fed through a float32 buffer converted per call).</summary>
    public TensorElementType SampleElementType { get; }
    /// <summary>The output's element type: float32 or float16 (read through a float32 buffer converted per call).</summary>
    public TensorElementType OutputElementType { get; }
    /// <summary>Name of the class-label input, or null for a model without one.</summary>
    public string? ClassLabelsInput { get; }
    /// <summary>
    /// Every input besides x_t and t — the class labels among them — which a generation's
    /// <see cref="Conditioning.Condition"/> feeds.
    /// </summary>
    public IReadOnlyList<ConditioningInput> ConditioningInputs { get; }
    /// <summary>Name of the output.</summary>
    public string OutputName { get; }
    /// <summary>Whether the batch dimension is dynamic (else fixed to <see cref="FixedBatch"/>).</summary>
    public int? FixedBatch { get; }
    /// <summary>Number of classes (0 if unconditional); label <see cref="NumClasses"/> is the null label.</summary>
    public int NumClasses => ClassLabelsInput is null ? 0 : Config.NumClasses;

    /// <summary>
    /// The image shape at another size (a latent model sampled at the request's size): refused where the graph fixes the
    /// height or width, or past <see cref="DiffusionConfig.MaxImageValues"/>.
    /// </summary>
    public ImageShape ShapeAt(int height, int width, string parameter = "Height")
    {
        var dims = Session.InputMetadata[SampleInput].Dimensions;
        if (height <= 0 || width <= 0)
            throw new DiffusionArgumentException(parameter, $"expected a positive size, got {height}×{width}.");
        if ((dims[2] > 0 && dims[2] != height) || (dims[3] > 0 && dims[3] != width))
            throw new DiffusionArgumentException(parameter, $"model '{Source}' takes only {dims[2]}×{dims[3]} " +
                $"(its input '{SampleInput}' is {Describe(Session.InputMetadata[SampleInput])}), not {height}×{width}.");
        if ((long)Channels * height * width > DiffusionConfig.MaxImageValues)
            throw new DiffusionArgumentException(parameter, $"{Channels}×{height}×{width} is " +
                $"{(long)Channels * height * width:N0} values; at most {DiffusionConfig.MaxImageValues:N0} per image.");
        return new(Channels, height, width);
    }

    /// <summary>Whether the timestep input takes floats (else integers, fractional timesteps rounded).</summary>
    public bool FloatTimesteps => TimestepElementType is TensorElementType.Float or TensorElementType.Float16;

    /// <summary>
    /// The timestep input's shape for a network batch: [B] per image, else [1] or a scalar as the graph declares.
    /// </summary>
    public long[] TimestepShape(int batch) => TimestepLayout == TimestepLayout.PerImage ? [batch]
        : Session.InputMetadata[TimestepInput].Dimensions.Length == 0 ? [] : [1];

    /// <summary>
    /// Whether the model has a null label (<see cref="NumClasses"/>) for unconditional sampling and classifier-free
    /// guidance.
    /// </summary>
    public bool HasNullClass => NumClasses > 0 && Config.NullClass;
    /// <summary>The settings the session was created with.</summary>
    public SessionSettings Settings { get; }

    /// <summary>Where bound buffers live for this session (managed arrays, pinned host memory, device twins).</summary>
    internal BufferPlacement Placement { get; }

    private DiffusionModel(InferenceSession session, string source, DiffusionConfig config, string configSource,
        ModelOptions options, BufferPlacement placement)
    {
        _session = session;
        Placement = placement;
        Source = source;
        Config = config;
        ConfigSource = configSource;
        Settings = options.Session;
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;
        string Names(IReadOnlyDictionary<string, NodeMetadata> m) =>
            string.Join(", ", m.Select(kv => $"{kv.Key} {Describe(kv.Value)}"));

        SampleInput = options.SampleInput ?? "sample";
        if (!inputs.TryGetValue(SampleInput, out var sample))
            throw new DiffusionException($"Model '{source}' has no input named '{SampleInput}' (its " +
                $"inputs: {Names(inputs)}). The model contract needs 'sample' float32 [B,C,H,W]; name another input " +
                    $"with SampleInput.");
        if (!IsFloat(sample.ElementDataType) || sample.Dimensions.Length != 4)
            throw new DiffusionException($"Model '{source}': input '{SampleInput}' is {Describe(sample)}; expected " +
                $"float32 or float16 [B,C,H,W].");
        SampleElementType = sample.ElementDataType;

        TimestepInput = options.TimestepInput ?? "timestep";
        if (!inputs.TryGetValue(TimestepInput, out var timestep))
            throw new DiffusionException($"Model '{source}' has no input named '{TimestepInput}' (its " +
                $"inputs: {Names(inputs)}). The model contract needs 'timestep' float32 [B]; name another " +
                    $"input with TimestepInput.");
        TimestepLayout = LayoutOf(timestep) ?? throw new DiffusionException(
            $"Model '{source}': input '{TimestepInput}' is {Describe(timestep)}; expected float32, float16, int64 or " +
                $"int32, of shape [B], [1] or a scalar.");
        TimestepElementType = timestep.ElementDataType;

        var labels = options.ClassLabelsInput ?? (inputs.ContainsKey("class_labels") ? "class_labels" : null);
        if (labels is not null)
        {
            if (!inputs.TryGetValue(labels, out var labelMeta))
                throw new DiffusionException($"Model '{source}' has no input named '{labels}' (its " +
                    $"inputs: {Names(inputs)}).");
            if (labelMeta.ElementDataType is not (TensorElementType.Int64 or TensorElementType.Int32)
                || labelMeta.Dimensions.Length != 1)
                throw new DiffusionException($"Model '{source}': input '{labels}' is " +
                    $"{Describe(labelMeta)}; expected int64 or int32 [B].");
            if (config.NumClasses <= 0)
                throw new DiffusionException($"Model '{source}' takes class labels ('{labels}') but its config " +
                    $"({configSource}) gives no num_classes.");
        }
        ClassLabelsInput = labels;
        var conditioning = new List<ConditioningInput>();
        foreach (var (name, meta) in inputs)
        {
            if (name == SampleInput || name == TimestepInput) continue;
            var d = meta.Dimensions;
            if (!ConditioningInput.Supports(meta.ElementDataType) || d.Length == 0
                || (d[0] > 0 && sample.Dimensions[0] > 0 && d[0] != sample.Dimensions[0]))
                throw new DiffusionException($"Model '{source}': input '{name}' is {Describe(meta)}; a conditioning " +
                    $"input must be float32, float16, int64 or int32 with the batch first ({SampleInput} is " +
                        $"{Describe(sample)}). Name it as the sample, timestep or class-label input if it plays one of " +
                            "those roles.");
            conditioning.Add(new ConditioningInput(name, meta.ElementDataType, [.. d[1..].Select(v => (long)v)],
                Describe(meta)));
        }
        ConditioningInputs = conditioning;

        OutputName = options.OutputName
            ?? (outputs.ContainsKey("model_output") ? "model_output"
            : outputs.ContainsKey("out_sample") ? "out_sample"
            : outputs.Count == 1 ? outputs.Keys.First()
            : throw new DiffusionException(nameof(ModelOptions.OutputName),
                $"model '{source}' has several outputs ({Names(outputs)}) and none is named " +
                    $"model_output; name the one to read."));
        if (!outputs.TryGetValue(OutputName, out var output))
            throw new DiffusionException($"Model '{source}' has no output named '{OutputName}' (its " +
                $"outputs: {Names(outputs)}).");
        if (!IsFloat(output.ElementDataType) || output.Dimensions.Length != 4)
            throw new DiffusionException($"Model '{source}': output '{OutputName}' is {Describe(output)}; expected " +
                $"float32 or float16 [B,C,H,W].");
        OutputElementType = output.ElementDataType;

        // The image shape: the config's, checked against every static dimension the graph declares.
        var dims = sample.Dimensions; // −1 marks a dynamic dimension
        int Pick(string what, int? fromConfig, int fromGraph)
        {
            if (fromConfig is int c && fromGraph > 0 && c != fromGraph)
                throw new DiffusionException($"Model '{source}': the config ({configSource}) says {what} = {c}, but " +
                    $"input '{SampleInput}' is declared {Describe(sample)}.");
            return fromConfig ?? (fromGraph > 0 ? fromGraph
                : throw new DiffusionException($"Model '{source}': {what} is neither in the config ({configSource}) " +
                    $"nor fixed by the graph ({SampleInput} {Describe(sample)}); add sample_size / " +
                        $"in_channels to the config."));
        }
        Channels = Pick("in_channels", config.InChannels, dims[1]);
        if (!config.LearnsVariance && output.Dimensions[1] > 0 && output.Dimensions[1] < Channels)
        {
            ConcatChannels = Channels - (int)output.Dimensions[1];
            Channels = (int)output.Dimensions[1];
        }
        Height = Pick("sample_size (height)", config.SampleSize?[0], dims[2]);
        Width = Pick("sample_size (width)", config.SampleSize?[1], dims[3]);
        if ((long)Channels * Height * Width > DiffusionConfig.MaxImageValues)
            throw new DiffusionException($"Model '{source}': images of {Channels}×{Height}×{Width} " +
                $"are {(long)Channels * Height * Width:N0} values; at most " +
                    $"{DiffusionConfig.MaxImageValues:N0} per image.");
        FixedBatch = dims[0] > 0 ? dims[0] : null;
        for (int k = 2; k < 4; k++)
            if (output.Dimensions[k] > 0 && output.Dimensions[k] != dims[k] && dims[k] > 0)
                throw new DiffusionException($"Model '{source}': output '{OutputName}' {Describe(output)} does not " +
                    $"match input '{SampleInput}' {Describe(sample)}.");
        int outputChannels = config.LearnsVariance ? 2 * Channels : Channels;
        if (output.Dimensions[1] > 0 && output.Dimensions[1] != outputChannels)
            throw new DiffusionException($"Model '{source}': output '{OutputName}' {Describe(output)} has " +
                $"{output.Dimensions[1]} channels, but the config's variance_type {config.VarianceType} with " +
                $"{Channels} image channels needs {outputChannels}" + (config.LearnsVariance
                    ? " (the prediction, then v)." : output.Dimensions[1] == 2 * Channels
                    ? "; a model that also outputs its variance needs variance_type learned_range." : "."));
        Schedule = config.CreateSchedule();
    }

    /// <summary>
    /// Loads a model file, or a diffusers / Optimum export folder (see <see cref="DiffusersFolder"/>). The config is
    /// <see cref="ModelOptions.Config"/> if given, else the model's <c>diffusion.config</c> metadata, else
    /// scheduler_config.json beside it (in a folder: the scheduler's config completed by unet/config.json).
    /// </summary>
    public static DiffusionModel Load(string path, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        if (Directory.Exists(path))
        {
            var (modelFile, json, configSource) = DiffusersFolder.Find(path);
            return Load(ModelFile(modelFile), modelFile, options, json is null ? null : (json, configSource));
        }
        if (!File.Exists(path)) throw new DiffusionException($"Model file '{path}' does not exist.");
        var sidecar = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!,
            "scheduler_config.json");
        return Load(ModelFile(path), path, options, File.Exists(sidecar)
            ? (InputFile.ReadAllText(sidecar, InputFile.MaxConfigBytes, $"'{sidecar}'"), sidecar) : null);
    }

    /// <summary>
    /// A model file, checked to be a regular, non-empty file; ONNX Runtime opens it by path, so that external weights
    /// beside it (model.onnx_data) load too.
    /// </summary>
    private static string ModelFile(string path)
    {
        InputFile.CheckRegular(path, $"Model file '{path}'");
        if (new FileInfo(path).Length == 0) throw new DiffusionException($"Model file '{path}' is empty.");
        return path;
    }

    /// <summary>Loads a model from ONNX bytes; <paramref name="source"/> names it in messages.</summary>
    public static DiffusionModel Load(byte[] onnx, string source, ModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        if (onnx.Length == 0) throw new DiffusionException($"Model file '{source}' is empty.");
        return Load(onnx, source, options ?? new(), null);
    }

    /// <summary><paramref name="model"/>: the ONNX bytes, or the path of a checked model file.</summary>
    private static DiffusionModel Load(object model, string source, ModelOptions options,
        (string Json, string Source)? sidecar)
    {
        using var sessionOptions = options.Session.Create(out var placement);
        InferenceSession session;
        try
        {
            session = model is byte[] onnx ? new InferenceSession(onnx, sessionOptions)
                : new InferenceSession((string)model, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            var message = CudaProvider.OneLine(e.Message);
            if (options.Session.Device.IsCuda && message.Contains("CUDA", StringComparison.OrdinalIgnoreCase))
                throw new DiffusionException($"Model '{source}' could not be placed " +
                    $"on {options.Session.Device}: {message}", e);
            throw OnnxComponent.LoadFailure("Model file", source, e);
        }
        try
        {
            var (config, configSource) = ReadConfig(session, source, options, sidecar);
            return new DiffusionModel(session, source, config, configSource, options, placement);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The config and where it came from: an explicitly given one first (it overrides), then the metadata, then the
    /// sidecar file.
    /// </summary>
    private static (DiffusionConfig, string) ReadConfig(InferenceSession session, string source, ModelOptions options,
        (string Json, string Source)? sidecar)
    {
        bool hasMetadata = session.ModelMetadata.CustomMetadataMap.TryGetValue(DiffusionConfig.MetadataKey,
            out var json);
        if (options.Config is { } given)
        {
            var name = options.ConfigSource ?? "the given config";
            given.Validate(name);
            var overrides = hasMetadata ? $" (overrides the model's '{DiffusionConfig.MetadataKey}' metadata)"
                : sidecar is { } side ? $" (overrides {side.Source})" : "";
            return (given, name + overrides);
        }
        if (hasMetadata)
        {
            var where = $"'{DiffusionConfig.MetadataKey}' metadata of {source}";
            return (DiffusionConfig.Parse(json!, where), where);
        }
        if (sidecar is { } found)
            return (DiffusionConfig.Parse(found.Json, found.Source), found.Source);
        throw new DiffusionException(
            $"Model '{source}' has no '{DiffusionConfig.MetadataKey}' metadata, no scheduler_config.json lies beside " +
            "it, and no config was given. Put a diffusers scheduler_config.json (plus sample_size / in_channels if " +
                "the graph does not fix them) next to the model, or give a Config.");
    }

    private static TimestepLayout? LayoutOf(NodeMetadata m)
    {
        if (m.ElementDataType is not (TensorElementType.Float or TensorElementType.Float16 or TensorElementType.Int64
            or TensorElementType.Int32)) return null;
        var d = m.Dimensions;
        if (d.Length == 0 || (d.Length == 1 && d[0] == 1)) return TimestepLayout.Shared;
        if (d.Length == 1) return TimestepLayout.PerImage;
        return null;
    }

    private static bool IsFloat(TensorElementType type) => type is TensorElementType.Float or TensorElementType.Float16;

    /// <summary>"float32 [batch,1,28,28]"-style description of an input or output.</summary>
    public static string Describe(NodeMetadata m)
    {
        var type = m.ElementDataType switch
        {
            TensorElementType.Float => "float32",
            TensorElementType.Int64 => "int64",
            TensorElementType.Int32 => "int32",
            TensorElementType.Float16 => "float16",
            TensorElementType.Double => "float64",
            var other => other.ToString().ToLowerInvariant(),
        };
        var dims = m.Dimensions.Select((d, i) => d > 0 ? d.ToString() : string.IsNullOrEmpty(m.SymbolicDimensions[i])
            ? "?" : m.SymbolicDimensions[i]);
        return $"{type} [{string.Join(",", dims)}]";
    }

    /// <summary>
    /// The label of a class given by name (case-insensitive) or number; throws with the list of names otherwise.
    /// </summary>
    public int ResolveClass(string nameOrId)
    {
        ArgumentNullException.ThrowIfNull(nameOrId);
        if (NumClasses == 0)
            throw new DiffusionArgumentException("Class",
                $"{Imaging.Printable.Of(nameOrId, 60)}: model '{Source}' is not class-conditional.");
        if (int.TryParse(nameOrId, out var id))
        {
            if (id < 0 || id >= NumClasses)
                throw new DiffusionArgumentException("Class",
                    $"{id}: model '{Source}' has classes 0…{NumClasses - 1}.");
            return id;
        }
        var names = Config.ClassNames ?? [];
        for (int i = 0; i < names.Length; i++)
            if (string.Equals(names[i], nameOrId.Trim(), StringComparison.OrdinalIgnoreCase)) return i;
        throw new DiffusionArgumentException("Class",
            $"'{Imaging.Printable.Of(nameOrId, 60)}' is not a class of model '{Source}'; use a number "
                + $"0…{NumClasses - 1}" +
            (names.Length > 0 ? $" or one of: {string.Join(", ", names)}." : "."));
    }

    // ---- lifetime: the session is freed only when no network call can still reach it ----

    private readonly object _lifetime = new();
    private readonly CancellationTokenSource _closing = new();
    private int _uses;
    private volatile bool _disposed;
    private readonly ThreadLocal<int> _usesHere = new(); // this model's uses on each thread
    private bool _freeOnLastUse; // Dispose was called inside a use and could not wait for it

    /// <summary>
    /// Cancelled when <see cref="Dispose"/> begins: bound network calls stop at once (ORT's Terminate).
    /// </summary>
    internal CancellationToken Closing => _closing.Token;

    /// <summary>Whether <see cref="Dispose"/> has begun.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>Throws <see cref="ObjectDisposedException"/> once <see cref="Dispose"/> has begun.</summary>
    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Begins a use of the session (a binding's lifetime); refused once <see cref="Dispose"/> began.</summary>
    internal void BeginUse()
    {
        lock (_lifetime)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _uses++;
            _usesHere.Value++;
        }
    }

    /// <summary>
    /// Ends a use; the last one after <see cref="Dispose"/> began frees the session if Dispose could not wait.
    /// </summary>
    internal void EndUse()
    {
        bool free;
        lock (_lifetime)
        {
            _usesHere.Value--;
            free = --_uses == 0 && _freeOnLastUse;
            if (free) _freeOnLastUse = false;
            Monitor.PulseAll(_lifetime);
        }
        if (free) Free();
    }

    /// <summary>
    /// Stops the running generations (each ends with <see cref="ObjectDisposedException"/> within one network call),
    /// waits for them, and frees the session; later calls throw <see cref="ObjectDisposedException"/>. Safe to call at
    /// any moment and more than once. Called from inside a generation (a progress callback), it cannot wait: the
    /// session is then freed when that generation ends.
    /// </summary>
    public void Dispose()
    {
        lock (_lifetime)
        {
            if (_disposed) return;
            _disposed = true;
            _closing.Cancel(); // sets Terminate on every live binding's RunOptions: a running Run returns early
            while (_uses > _usesHere.Value) Monitor.Wait(_lifetime);
            if (_uses > 0)
            {
                _freeOnLastUse = true; // uses of this very thread: the last EndUse frees
                return;
            }
        }
        Free();
    }

    private void Free()
    {
        _session.Dispose();
        _closing.Dispose();
        _usesHere.Dispose();
    }
}
