using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// One network batch bound once per generation: host buffers for sample / timestep / class_labels / output (managed
/// arrays, or pinned memory on CUDA — see <see cref="BufferPlacement"/>) attached to an <see cref="OrtIoBinding"/>, so
/// every sampling step writes into the buffers and runs — no per-step allocation, no per-step binding. Where the
/// placement asks for device twins (CUDA graphs), those are what is bound, and each run copies the inputs to them and
/// the output back.
/// </summary>
internal sealed unsafe class ModelBinding : IDisposable
{
    private readonly DiffusionModel _model;
    private readonly OrtIoBinding? _io;
    private readonly RunOptions _run;
    private readonly List<IDisposable> _owned = []; // disposed last first: values before the allocators that made them
    private readonly float* _sample, _output, _timestepFloat;
    private readonly long* _labels, _timestepLong;
    private readonly int _values;
    private readonly TensorCopy? _toDevice, _fromDevice;
    private readonly CancellationTokenRegistration _cancelRegistration, _closingRegistration;
    private int _disposed;

    /// <summary>x_t values fed to the network, [B,C,H,W].</summary>
    public Span<float> Sample => new(_sample, _values);
    /// <summary>Whether the network takes class labels.</summary>
    public bool HasLabels => _labels != null;
    /// <summary>Class labels fed to the network, [B] (empty for unconditional models).</summary>
    public Span<long> Labels => HasLabels ? new(_labels, Batch) : [];
    /// <summary>The network's output, [B,C,H,W].</summary>
    public Span<float> Output => new(_output, _values);
    /// <summary>Whether device twins are bound and copied around each run.</summary>
    public bool Staged => _toDevice is not null;
    /// <summary>Network batch size B.</summary>
    public int Batch { get; }
    /// <summary>
    /// Time spent inside ONNX Runtime's Run (with the copies of a staged binding), in Stopwatch ticks.
    /// </summary>
    public long RunTicks { get; private set; }
    /// <summary>Number of Run calls.</summary>
    public long Runs { get; private set; }

    public ModelBinding(DiffusionModel model, int batch, CancellationToken cancellation)
    {
        if (model.FixedBatch is int fixedBatch && fixedBatch != batch)
            throw new DiffusionArgumentException(nameof(batch),
                $"model '{model.Source}' takes a fixed batch of {fixedBatch}, but a network " +
                    $"call of {batch} was needed.");
        model.BeginUse(); // ends in Dispose; refused once the model is disposed
        _model = model;
        Batch = batch;
        _values = batch * model.ImageSize;
        long[] imageShape = [batch, model.Channels, model.Height, model.Width];
        _run = new RunOptions();
        try
        {
            long[] tShape = model.TimestepShape(batch);
            _io = model.Session.CreateIoBinding();
            _closingRegistration = model.Closing.Register(() => _run.Terminate = true);
            var placement = model.Placement;
            var host = HostAllocator(placement.Host);
            var device = placement.Device is { } d ? Allocator(d) : null;
            List<OrtValue> hostInputs = [], deviceInputs = [];

            (OrtValue Host, OrtValue Bound) Bind<T>(string name, long[] shape, TensorElementType type, bool input,
                out T* pointer) where T : unmanaged
            {
                var value = host is null
                    ? Own(OrtValue.CreateTensorValueFromMemory(new T[shape.Aggregate(1L, (a, d) => a * d)], shape))
                                         : Own(OrtValue.CreateAllocatedTensorValue(host, type, shape));
                var bytes = value.GetTensorMutableRawData();
                bytes.Clear(); // allocator memory comes uninitialised
                pointer = (T*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(bytes));
                var bound = value;
                if (device is not null)
                {
                    bound = Own(OrtValue.CreateAllocatedTensorValue(device, type, shape));
                    if (input) { hostInputs.Add(value); deviceInputs.Add(bound); }
                }
                if (input) _io.BindInput(name, bound); else _io.BindOutput(name, bound);
                return (value, bound);
            }

            Bind(model.SampleInput, imageShape, TensorElementType.Float, input: true, out _sample);
            if (model.FloatTimesteps)
                Bind(model.TimestepInput, tShape, TensorElementType.Float, input: true, out _timestepFloat);
            else
                Bind(model.TimestepInput, tShape, TensorElementType.Int64, input: true, out _timestepLong);
            if (model.ClassLabelsInput is { } labels)
                Bind(labels, [batch], TensorElementType.Int64, input: true, out _labels);
            var (hostOutput, boundOutput) = Bind(model.OutputName, imageShape, TensorElementType.Float, input: false,
                out _output);
            if (device is not null)
            {
                _toDevice = new TensorCopy(hostInputs, deviceInputs);
                _fromDevice = new TensorCopy([boundOutput], [hostOutput]);
            }
            if (cancellation.CanBeCanceled) _cancelRegistration = cancellation.Register(() => _run.Terminate = true);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private T Own<T>(T value) where T : IDisposable
    {
        _owned.Add(value);
        return value;
    }

    /// <summary>
    /// An allocator of <paramref name="info"/>'s memory from the session (ORT registers one per memory its providers
    /// use).
    /// </summary>
    private OrtAllocator Allocator(OrtMemoryInfo info)
    {
        try { return Own(new OrtAllocator(_model.Session, info)); }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException($"Model '{_model.Source}' on {_model.Settings.Device}: ONNX Runtime has no " +
                $"allocator for {info} ({e.Message.Trim()}), which bound device buffers (CUDA graphs) need.", e);
        }
    }

    /// <summary>
    /// The pinned-memory allocator where the provider offers one; null (managed arrays) otherwise — pinned memory only
    /// speeds up copies.
    /// </summary>
    private OrtAllocator? HostAllocator(OrtMemoryInfo? info)
    {
        if (info is null) return null;
        try { return Own(new OrtAllocator(_model.Session, info)); }
        catch (OnnxRuntimeException) { return null; }
    }

    /// <summary>Writes the timesteps (one per network-batch entry) in the graph's declared layout.</summary>
    public void SetTimesteps(ReadOnlySpan<double> t)
    {
        switch (_model.TimestepLayout)
        {
            case TimestepLayout.FloatPerImage:
                for (int i = 0; i < t.Length; i++) _timestepFloat[i] = (float)t[i];
                break;
            case TimestepLayout.Int64PerImage:
                for (int i = 0; i < t.Length; i++) _timestepLong[i] = (long)Math.Round(t[i]);
                break;
            default:
                for (int i = 1; i < t.Length; i++)
                    if (t[i] != t[0])
                        throw new DiffusionException($"Model '{_model.Source}' takes one timestep for the whole " +
                            $"batch ('{_model.TimestepInput}' is a scalar), but this sampler needs a different " +
                                $"timestep per image; use BatchSize 1.");
                if (_timestepFloat != null) _timestepFloat[0] = (float)t[0];
                else _timestepLong[0] = (long)Math.Round(t[0]);
                break;
        }
    }

    /// <summary>Runs the network on the bound buffers.</summary>
    public void Run(CancellationToken cancellation)
    {
        long start = Stopwatch.GetTimestamp();
        _model.ThrowIfDisposed();
        try
        {
            _toDevice?.Run();
            _model.Session.RunWithBinding(_run, _io!);
            _fromDevice?.Run();
        }
        catch (OnnxRuntimeException) when (_model.IsDisposed)
        {
            throw new ObjectDisposedException(nameof(DiffusionModel), $"Model '{_model.Source}' was disposed while " +
                "generating.");
        }
        catch (OnnxRuntimeException) when (cancellation.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellation);
        }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException($"Model '{_model.Source}' failed while running a batch " +
                $"of {Batch}: {e.Message.Trim()}", e);
        }
        RunTicks += Stopwatch.GetTimestamp() - start;
        Runs++;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _cancelRegistration.Dispose();
        _closingRegistration.Dispose();
        _io?.Dispose();
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _run.Dispose();
        _model.EndUse(); // the last use after the model's Dispose began frees its session
    }
}
