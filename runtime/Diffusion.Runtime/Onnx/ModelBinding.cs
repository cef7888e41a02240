using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// One network batch bound once: managed buffers for sample / timestep / class_labels / output, pinned as OrtValues
/// and attached to an <see cref="OrtIoBinding"/>, so every sampling step writes into the buffers and runs — no
/// per-step allocation, no per-step binding.
/// </summary>
internal sealed class ModelBinding : IDisposable
{
    private readonly DiffusionModel _model;
    private readonly OrtIoBinding _io;
    private readonly RunOptions _run;
    private readonly List<OrtValue> _values = [];
    private readonly float[]? _timestepFloat;
    private readonly long[]? _timestepLong;
    private readonly CancellationTokenRegistration _cancelRegistration;

    /// <summary>x_t values fed to the network, [B,C,H,W].</summary>
    public float[] Sample { get; }
    /// <summary>Class labels fed to the network, [B] (null for unconditional models).</summary>
    public long[]? Labels { get; }
    /// <summary>The network's output, [B,C,H,W].</summary>
    public float[] Output { get; }
    /// <summary>Network batch size B.</summary>
    public int Batch { get; }
    /// <summary>Time spent inside ONNX Runtime's Run, in Stopwatch ticks.</summary>
    public long RunTicks { get; private set; }
    /// <summary>Number of Run calls.</summary>
    public long Runs { get; private set; }

    public ModelBinding(DiffusionModel model, int batch, CancellationToken cancellation)
    {
        if (model.FixedBatch is int fixedBatch && fixedBatch != batch)
            throw new DiffusionArgumentException($"Model '{model.Source}' takes a fixed batch of {fixedBatch}, but a network call of {batch} was needed.");
        _model = model;
        Batch = batch;
        long[] imageShape = [batch, model.Channels, model.Height, model.Width];
        Sample = new float[batch * model.ImageSize];
        Output = new float[batch * model.ImageSize];
        _io = model.Session.CreateIoBinding();
        _run = new RunOptions();
        try
        {
            Bind(model.SampleInput, OrtValue.CreateTensorValueFromMemory(Sample, imageShape), input: true);
            long[] tShape = model.TimestepLayout switch
            {
                TimestepLayout.FloatPerImage or TimestepLayout.Int64PerImage => [batch],
                _ => model.Session.InputMetadata[model.TimestepInput].Dimensions.Length == 0 ? [] : [1],
            };
            int tCount = tShape.Length == 0 ? 1 : (int)tShape[0];
            if (model.TimestepLayout is TimestepLayout.FloatPerImage or TimestepLayout.FloatShared)
                Bind(model.TimestepInput, OrtValue.CreateTensorValueFromMemory(_timestepFloat = new float[tCount], tShape), input: true);
            else
                Bind(model.TimestepInput, OrtValue.CreateTensorValueFromMemory(_timestepLong = new long[tCount], tShape), input: true);
            if (model.ClassLabelsInput is { } labels)
                Bind(labels, OrtValue.CreateTensorValueFromMemory(Labels = new long[batch], [batch]), input: true);
            Bind(model.OutputName, OrtValue.CreateTensorValueFromMemory(Output, imageShape), input: false);
            if (cancellation.CanBeCanceled) _cancelRegistration = cancellation.Register(() => _run.Terminate = true);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Bind(string name, OrtValue value, bool input)
    {
        _values.Add(value);
        if (input) _io.BindInput(name, value); else _io.BindOutput(name, value);
    }

    /// <summary>Writes the timesteps (one per network-batch entry) in the graph's declared layout.</summary>
    public void SetTimesteps(ReadOnlySpan<double> t)
    {
        switch (_model.TimestepLayout)
        {
            case TimestepLayout.FloatPerImage:
                for (int i = 0; i < t.Length; i++) _timestepFloat![i] = (float)t[i];
                break;
            case TimestepLayout.Int64PerImage:
                for (int i = 0; i < t.Length; i++) _timestepLong![i] = (long)Math.Round(t[i]);
                break;
            default:
                for (int i = 1; i < t.Length; i++)
                    if (t[i] != t[0])
                        throw new DiffusionException($"Model '{_model.Source}' takes one timestep for the whole batch ('{_model.TimestepInput}' is a scalar), but this sampler needs a different timestep per image; use BatchSize 1.");
                if (_timestepFloat is not null) _timestepFloat[0] = (float)t[0]; else _timestepLong![0] = (long)Math.Round(t[0]);
                break;
        }
    }

    /// <summary>Runs the network on the bound buffers.</summary>
    public void Run(CancellationToken cancellation)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            _model.Session.RunWithBinding(_run, _io);
        }
        catch (OnnxRuntimeException) when (cancellation.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellation);
        }
        catch (OnnxRuntimeException e)
        {
            throw new DiffusionException($"Model '{_model.Source}' failed while running a batch of {Batch}: {e.Message.Trim()}", e);
        }
        RunTicks += Stopwatch.GetTimestamp() - start;
        Runs++;
    }

    public void Dispose()
    {
        _cancelRegistration.Dispose();
        _io.Dispose();
        foreach (var v in _values) v.Dispose();
        _run.Dispose();
    }
}
