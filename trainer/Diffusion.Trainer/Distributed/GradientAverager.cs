using Diffusion.Distributed;
using TorchSharp.Modules;

namespace Diffusion.Trainer.Distributed;

/// <summary>
/// Averages gradients over the ranks the way Horovod does: every parameter's gradient is copied into one flat float32
/// buffer (allocated once), the buffer — with the step's loss in its last slot — is summed over the ranks with
/// in-place allreduces of at most <see cref="BucketElements"/> values each (one call for models under 16 MB), scaled
/// by 1/N, and copied back. 4 bytes per parameter travel per step and rank.
/// </summary>
public sealed class GradientAverager
{
    private readonly ICommunicator _world;
    private readonly Parameter[] _parameters;
    private readonly float[] _flat;

    /// <summary>Values per allreduce call.</summary>
    public const int BucketElements = 4 << 20;

    /// <summary>An averager of <paramref name="parameters"/>' gradients over <paramref name="world"/>.</summary>
    public GradientAverager(ICommunicator world, IEnumerable<Parameter> parameters)
    {
        _world = world;
        _parameters = parameters.ToArray();
        long total = _parameters.Sum(p => p.numel());
        if (total + 1 > Array.MaxLength)
            throw new ArgumentException($"{total:N0} parameters are more than one flat buffer holds.");
        _flat = new float[total + 1];
    }

    /// <summary>Bytes one rank sends per step (4 per parameter, and the loss).</summary>
    public long BytesPerStep => 4L * _flat.Length;

    /// <summary>Time spent in allreduce calls so far.</summary>
    public TimeSpan AllreduceTime { get; private set; }

    /// <summary>
    /// Replaces every gradient by its mean over the ranks; returns the mean of <paramref name="loss"/>.
    /// </summary>
    public double Average(double loss)
    {
        if (_world.Size == 1) return loss;
        var flat = _flat.AsSpan();
        int offset = 0;
        foreach (var p in _parameters)
        {
            int n = (int)p.numel();
            using var grad = p.grad is { } g ? (g.device_type == TorchSharp.DeviceType.CPU ? g.alias() : g.cpu())
                : null;
            if (grad is null) flat.Slice(offset, n).Clear();
            else grad.data<float>().CopyTo(flat.Slice(offset, n), 0, 0);
            offset += n;
        }
        flat[^1] = (float)loss;
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int from = 0; from < flat.Length; from += BucketElements)
            _world.AllreduceSum(flat.Slice(from, Math.Min(BucketElements, flat.Length - from)));
        AllreduceTime += System.Diagnostics.Stopwatch.GetElapsedTime(start);
        System.Numerics.Tensors.TensorPrimitives.Multiply(flat, 1f / _world.Size, flat);
        offset = 0;
        foreach (var p in _parameters)
        {
            int n = (int)p.numel();
            if (p.grad is { } g)
            {
                if (g.device_type == TorchSharp.DeviceType.CPU) g.data<float>().CopyFrom(flat.Slice(offset, n), 0, 0);
                else
                {
                    using var host = g.cpu();
                    host.data<float>().CopyFrom(flat.Slice(offset, n), 0, 0);
                    g.copy_(host);
                }
            }
            offset += n;
        }
        return flat[^1];
    }
}
