using System.Numerics.Tensors;
using Diffusion.Runtime.Imaging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// A pipeline component that is one ONNX graph run once per request or per image (a text encoder, a VAE): its session
/// opened from the file's path (so external weights beside it, model.onnx_data, load) with its own
/// <see cref="SessionSettings"/>, and one call that feeds float32 or integer host arrays in whatever element type the
/// graph declares and reads a float32 or float16 output back as float32.
/// </summary>
public abstract class OnnxComponent : IDisposable
{
    private readonly InferenceSession _session;
    private int _disposed;

    /// <summary>Opens <paramref name="path"/>; <paramref name="what"/> names the component in messages.</summary>
    protected OnnxComponent(string path, SessionSettings? settings, string what)
    {
        Source = path;
        Settings = settings ?? new SessionSettings();
        InputFile.CheckRegular(path, $"{what} '{path}'");
        using var options = Settings.Create(out _);
        try { _session = new InferenceSession(path, options); }
        catch (OnnxRuntimeException e)
        {
            throw LoadFailure(what, path, e);
        }
    }

    /// <summary>
    /// One line for a model file ONNX Runtime refused: external weights outside the model's folder, or missing, named
    /// as such; anything else with ORT's own message.
    /// </summary>
    internal static DiffusionException LoadFailure(string what, string path, OnnxRuntimeException e)
    {
        var message = e.Message.Trim();
        string? problem = message.Contains("escapes model directory", StringComparison.Ordinal)
            || message.Contains("Absolute path not allowed", StringComparison.Ordinal)
                ? "its external weights lie outside its folder, which ONNX Runtime refuses (and so do we: a model " +
                    "file must not read other files); keep model.onnx_data beside model.onnx"
            : message.Contains("External data path does not exist", StringComparison.Ordinal)
                ? "its external weights are missing; copy model.onnx_data (or the file its initializers name) beside it"
            : null;
        return problem is null
            ? new DiffusionException($"{what} '{path}' could not be loaded by ONNX Runtime ({message}). Is it a " +
                "complete, valid .onnx file?", e)
            : new DiffusionException($"{what} '{path}': {problem} (ONNX Runtime: {message}).", e);
    }

    /// <summary>The model file.</summary>
    public string Source { get; }
    /// <summary>The settings the session was created with.</summary>
    public SessionSettings Settings { get; }
    /// <summary>The session's inputs.</summary>
    public IReadOnlyDictionary<string, NodeMetadata> Inputs => _session.InputMetadata;
    /// <summary>The session's outputs.</summary>
    public IReadOnlyDictionary<string, NodeMetadata> Outputs => _session.OutputMetadata;

    /// <summary>The input or output named <paramref name="name"/>, or the only one, else a clear refusal.</summary>
    protected static string Pick(IReadOnlyDictionary<string, NodeMetadata> ports, string name, string what,
        string source, string kind)
    {
        if (ports.ContainsKey(name)) return name;
        if (ports.Count == 1) return ports.Keys.First();
        throw new DiffusionException($"{what} '{source}' has no {kind} named '{name}' (its {kind}s: " +
            $"{string.Join(", ", ports.Select(p => $"{p.Key} {DiffusionModel.Describe(p.Value)}"))}).");
    }

    /// <summary>A host value for one input: floats, or integers, with its shape.</summary>
    protected readonly record struct Feed(string Name, long[] Shape, float[]? Floats = null, long[]? Integers = null);

    /// <summary>Runs the graph once on <paramref name="feeds"/> and returns <paramref name="output"/> as float32.</summary>
    protected float[] Run(IReadOnlyList<Feed> feeds, string output, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var values = new List<OrtValue>();
        try
        {
            foreach (var feed in feeds) values.Add(ToOrt(feed, _session.InputMetadata[feed.Name].ElementDataType));
            using var run = new RunOptions();
            using var registration = cancellation.Register(() => run.Terminate = true);
            using var results = _session.Run(run, feeds.Select(f => f.Name).ToArray(), values, [output]);
            var result = results[0];
            var info = result.GetTensorTypeAndShape();
            var floats = new float[info.ElementCount];
            switch (info.ElementDataType)
            {
                case TensorElementType.Float: result.GetTensorDataAsSpan<float>().CopyTo(floats); break;
                case TensorElementType.Float16:
                    TensorPrimitives.ConvertToSingle(
                        System.Runtime.InteropServices.MemoryMarshal.Cast<Float16, Half>(result.GetTensorDataAsSpan<Float16>()),
                        floats);
                    break;
                default:
                    throw new DiffusionException($"'{Source}': output '{output}' is {info.ElementDataType}; expected " +
                        "float32 or float16.");
            }
            return floats;
        }
        catch (OnnxRuntimeException) when (cancellation.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellation);
        }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException($"'{Source}' failed: {e.Message.Trim()}", e);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private OrtValue ToOrt(Feed feed, TensorElementType type)
    {
        switch (type)
        {
            case TensorElementType.Float when feed.Floats is { } f:
                return OrtValue.CreateTensorValueFromMemory(f, feed.Shape);
            case TensorElementType.Float16 when feed.Floats is { } f:
                var half = new Float16[f.Length];
                TensorPrimitives.ConvertToHalf(f, System.Runtime.InteropServices.MemoryMarshal.Cast<Float16, Half>(
                    half.AsSpan()));
                return OrtValue.CreateTensorValueFromMemory(half, feed.Shape);
            case TensorElementType.Int64 when feed.Integers is { } i:
                return OrtValue.CreateTensorValueFromMemory(i, feed.Shape);
            case TensorElementType.Int32 when feed.Integers is { } i:
                return OrtValue.CreateTensorValueFromMemory(i.Select(v => checked((int)v)).ToArray(), feed.Shape);
            default:
                throw new DiffusionException($"'{Source}': input '{feed.Name}' is " +
                    $"{DiffusionModel.Describe(_session.InputMetadata[feed.Name])}, which this component does not feed.");
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _session.Dispose();
        GC.SuppressFinalize(this);
    }
}
