using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Diffusion.Runtime.Conditioning;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// One network batch bound once per generation: host buffers for x_t, the timestep, every conditioning input and the
/// output (managed arrays, or pinned memory on CUDA — see <see cref="BufferPlacement"/>) attached to an
/// <see cref="OrtIoBinding"/>, so every sampling step writes into the buffers and runs — no per-step allocation, no
/// per-step binding. Each buffer has the graph's own element type; a float16 x_t or output is reached through a
/// float32 buffer converted once per run. Where the placement asks for device twins (CUDA graphs), those are what is
/// bound, and each run copies the inputs to them and the output back.
/// </summary>
internal sealed unsafe class ModelBinding : IDisposable
{
    private readonly DiffusionModel _model;
    private readonly OrtIoBinding? _io;
    private readonly RunOptions _run;
    private readonly List<IDisposable> _owned = []; // disposed last first: values before the allocators that made them
    private readonly float* _sample, _output; // what the samplers read and write: float32 always
    private readonly Half* _sampleHalf, _outputHalf; // the bound buffers of a float16 graph, else null
    private readonly float[]? _sampleStaging, _outputStaging; // their float32 sides (pinned; kept alive here)
    // With channels concatenated after x's (DiffusionModel.ConcatChannels): the bound sample buffer, whole, and the
    // concatenated channels' float32 side; x (_sample) is then staged and interleaved with them per row at each run.
    private readonly void* _sampleBound;
    private readonly float* _concat;
    private readonly float[]? _concatStaging;
    private readonly int _imageValues, _concatValues;
    private readonly void* _timestep;
    private readonly (ConditioningInput Input, IntPtr Buffer, int EntrySize)[] _conditioning;
    private readonly int _values, _outputValues;
    private readonly TensorCopy? _toDevice, _fromDevice;
    private readonly CancellationTokenRegistration _cancelRegistration, _closingRegistration;
    private int _disposed;

    /// <summary>x_t values fed to the network, [B,C,H,W].</summary>
    public Span<float> Sample => new(_sample, _values);
    /// <summary>
    /// The channels the network reads after x's, [B,E,H,W] (E = <see cref="DiffusionModel.ConcatChannels"/>; empty
    /// without): written once per batch of images, interleaved with x's channels per row at each run.
    /// </summary>
    public Span<float> Concatenated => new(_concat, Batch * _concatValues);
    /// <summary>The network's output, [B,C,H,W] ([B,2C,H,W] with a learned variance: the prediction, then v).</summary>
    public Span<float> Output => new(_output, _outputValues);
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

    /// <summary>
    /// Binds a batch of <paramref name="batch"/> images of <paramref name="shape"/>; <paramref name="entryShapes"/>
    /// gives each conditioning input's shape after the batch (in the order of the model's ConditioningInputs).
    /// </summary>
    public ModelBinding(DiffusionModel model, int batch, ImageShape shape, IReadOnlyList<int[]> entryShapes,
        CancellationToken cancellation)
    {
        if (model.FixedBatch is int fixedBatch && fixedBatch != batch)
            throw new DiffusionArgumentException(nameof(batch),
                $"model '{model.Source}' takes a fixed batch of {fixedBatch}, but a network " +
                    $"call of {batch} was needed.");
        model.BeginUse(); // ends in Dispose; refused once the model is disposed
        _model = model;
        Batch = batch;
        _values = batch * shape.Size;
        _outputValues = batch * model.OutputChannels * shape.Height * shape.Width;
        (_imageValues, _concatValues) = (shape.Size, model.ConcatChannels * shape.Height * shape.Width);
        long[] imageShape = [batch, shape.Channels + model.ConcatChannels, shape.Height, shape.Width];
        _run = new RunOptions();
        _conditioning = new (ConditioningInput, IntPtr, int)[model.ConditioningInputs.Count];
        try
        {
            _io = model.Session.CreateIoBinding();
            _closingRegistration = model.Closing.Register(() => _run.Terminate = true);
            var placement = model.Placement;
            var host = HostAllocator(placement.Host);
            var device = placement.Device is { } d ? Allocator(d) : null;
            List<OrtValue> hostInputs = [], deviceInputs = [];

            (OrtValue Host, OrtValue Bound, IntPtr Pointer) Bind(string name, long[] dims, TensorElementType type,
                bool input)
            {
                var value = Own(host is null ? ManagedTensor(type, dims)
                    : OrtValue.CreateAllocatedTensorValue(host, type, dims));
                var bytes = value.GetTensorMutableRawData();
                bytes.Clear(); // allocator memory comes uninitialised
                var pointer = (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetReference(bytes));
                var bound = value;
                if (device is not null)
                {
                    bound = Own(OrtValue.CreateAllocatedTensorValue(device, type, dims));
                    if (input) { hostInputs.Add(value); deviceInputs.Add(bound); }
                }
                if (input) _io.BindInput(name, bound); else _io.BindOutput(name, bound);
                return (value, bound, pointer);
            }

            var sample = Bind(model.SampleInput, imageShape, model.SampleElementType, input: true).Pointer;
            if (_concatValues > 0)
            {
                _sampleBound = (void*)sample;
                _sample = Staging(out _sampleStaging, _values);
                _concat = Staging(out _concatStaging, batch * _concatValues);
            }
            else if (model.SampleElementType == TensorElementType.Float16)
            {
                _sampleHalf = (Half*)sample;
                _sample = Staging(out _sampleStaging, _values);
            }
            else _sample = (float*)sample;
            _timestep = (void*)Bind(model.TimestepInput, model.TimestepShape(batch), model.TimestepElementType,
                input: true).Pointer;
            for (int k = 0; k < _conditioning.Length; k++)
            {
                var c = model.ConditioningInputs[k];
                long[] dims = [batch, .. entryShapes[k].Select(v => (long)v)];
                _conditioning[k] = (c, Bind(c.Name, dims, c.ElementType, input: true).Pointer,
                    entryShapes[k].Aggregate(1, (a, v) => a * v));
            }
            var (hostOutput, boundOutput, output) = Bind(model.OutputName,
                [batch, model.OutputChannels, shape.Height, shape.Width], model.OutputElementType, input: false);
            if (model.OutputElementType == TensorElementType.Float16)
            {
                _outputHalf = (Half*)output;
                _output = Staging(out _outputStaging, _outputValues);
            }
            else _output = (float*)output;
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

    /// <summary>A float32 buffer of the batch, pinned for the binding's life (the float16 graph's side).</summary>
    private static float* Staging(out float[] array, int values)
    {
        array = GC.AllocateArray<float>(values, pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
    }

    /// <summary>A zeroed tensor over a managed array of <paramref name="type"/>.</summary>
    private static OrtValue ManagedTensor(TensorElementType type, long[] dims)
    {
        long n = dims.Aggregate(1L, (a, d) => a * d);
        return type switch
        {
            TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(new float[n], dims),
            TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(new Float16[n], dims),
            TensorElementType.Int64 => OrtValue.CreateTensorValueFromMemory(new long[n], dims),
            TensorElementType.Int32 => OrtValue.CreateTensorValueFromMemory(new int[n], dims),
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, "no buffer of this element type"),
        };
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

    /// <summary>
    /// Writes <paramref name="value"/>'s entry <paramref name="entry"/> into row <paramref name="row"/> of conditioning
    /// input number <paramref name="input"/>, in the input's element type (the caller has checked that floats go to a
    /// float input and integers to an integer one, and the entry's size).
    /// </summary>
    public void SetConditioning(int input, int row, ConditioningTensor value, int entry)
    {
        var (c, buffer, size) = _conditioning[input];
        Debug.Assert(value.EntrySize == size && value.IsInteger == c.IsInteger);
        void* at = (byte*)buffer + (long)row * size * ElementSize(c.ElementType);
        switch (c.ElementType)
        {
            case TensorElementType.Float: value.Floats(entry).CopyTo(new Span<float>(at, size)); break;
            case TensorElementType.Float16: TensorPrimitives.ConvertToHalf(value.Floats(entry), new Span<Half>(at, size)); break;
            case TensorElementType.Int64: value.Integers(entry).CopyTo(new Span<long>(at, size)); break;
            default:
                var to = new Span<int>(at, size);
                var from = value.Integers(entry);
                for (int i = 0; i < size; i++)
                    to[i] = from[i] is >= int.MinValue and <= int.MaxValue ? (int)from[i]
                        : throw new DiffusionArgumentException(c.Name, $"{from[i]} does not fit the int32 input " +
                            $"'{c.Name}' of model '{_model.Source}'.");
                break;
        }
    }

    /// <summary>Row by row into the bound sample buffer: x's channels, then the concatenated ones.</summary>
    private void Interleave()
    {
        int row = _imageValues + _concatValues;
        bool half = _model.SampleElementType == TensorElementType.Float16;
        for (int b = 0; b < Batch; b++)
        {
            var x = Sample.Slice(b * _imageValues, _imageValues);
            var extra = Concatenated.Slice(b * _concatValues, _concatValues);
            if (half)
            {
                var to = new Span<Half>((Half*)_sampleBound + (long)b * row, row);
                TensorPrimitives.ConvertToHalf(x, to[.._imageValues]);
                TensorPrimitives.ConvertToHalf(extra, to[_imageValues..]);
            }
            else
            {
                var to = new Span<float>((float*)_sampleBound + (long)b * row, row);
                x.CopyTo(to);
                extra.CopyTo(to[_imageValues..]);
            }
        }
    }

    private static int ElementSize(TensorElementType type) => type switch
    {
        TensorElementType.Float16 => 2, TensorElementType.Int64 => 8, _ => 4,
    };

    /// <summary>Writes the timesteps (one per network-batch entry) in the graph's declared layout and type.</summary>
    public void SetTimesteps(ReadOnlySpan<double> t)
    {
        int n = t.Length;
        if (_model.TimestepLayout == TimestepLayout.Shared)
        {
            for (int i = 1; i < t.Length; i++)
                if (t[i] != t[0])
                    throw new DiffusionException($"Model '{_model.Source}' takes one timestep for the whole " +
                        $"batch ('{_model.TimestepInput}' is a scalar), but this sampler needs a different " +
                            $"timestep per image; use BatchSize 1.");
            n = 1;
        }
        for (int i = 0; i < n; i++)
            switch (_model.TimestepElementType)
            {
                case TensorElementType.Float: ((float*)_timestep)[i] = (float)t[i]; break;
                case TensorElementType.Float16: ((Half*)_timestep)[i] = (Half)t[i]; break;
                case TensorElementType.Int64: ((long*)_timestep)[i] = (long)Math.Round(t[i]); break;
                default: ((int*)_timestep)[i] = (int)Math.Round(t[i]); break;
            }
    }

    /// <summary>Runs the network on the bound buffers.</summary>
    public void Run(CancellationToken cancellation)
    {
        long start = Stopwatch.GetTimestamp();
        _model.ThrowIfDisposed();
        try
        {
            if (_sampleHalf != null) TensorPrimitives.ConvertToHalf(Sample, new Span<Half>(_sampleHalf, _values));
            if (_sampleBound != null) Interleave();
            _toDevice?.Run();
            _model.Session.RunWithBinding(_run, _io!);
            _fromDevice?.Run();
            if (_outputHalf != null)
                TensorPrimitives.ConvertToSingle(new Span<Half>(_outputHalf, _outputValues), Output);
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
        catch (OnnxRuntimeException e) when (OutOfMemory(e.Message) is string asked)
        {
            // The batch (GenerationRequest.BatchSize) is the knob that bounds a run's activations; the images do not
            // depend on it.
            throw new DiffusionException("BatchSize", $"model '{_model.Source}' ran out of " +
                $"memory at a network batch of {Batch}{asked}: lower the batch (the images are the same at any " +
                "batch size) or the image size.", e);
        }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException($"Model '{_model.Source}' failed while running a batch " +
                $"of {Batch}: {e.Message.Trim()}", e);
        }
        RunTicks += Stopwatch.GetTimestamp() - start;
        Runs++;
    }

    /// <summary>
    /// Whether ONNX Runtime's <paramref name="message"/> says that an allocation failed (its CPU arena's or CUDA's
    /// words): null if not, else " (one buffer of X GiB)" where it names the size, or "".
    /// </summary>
    internal static string? OutOfMemory(string message)
    {
        if (!message.Contains("Failed to allocate memory", StringComparison.OrdinalIgnoreCase)
            && !message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
            && !message.Contains("std::bad_alloc", StringComparison.Ordinal))
            return null;
        var size = System.Text.RegularExpressions.Regex.Match(message, @"buffer of size (\d+)");
        return size.Success && double.TryParse(size.Groups[1].Value, out var bytes)
            ? $" (one buffer of {bytes / (1L << 30):0.##} GiB)" : "";
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
