namespace Diffusion.Distributed;

/// <summary>
/// The collective operations data-parallel training and generation across processes are built from: every rank calls
/// each one in the same order. <see cref="SingleProcess"/> is the one-rank world; <see cref="Mpi"/> spans processes and
/// machines.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's rank, 0 … <see cref="Size"/> − 1; rank 0 writes the run's files.</summary>
    int Rank { get; }

    /// <summary>Number of ranks.</summary>
    int Size { get; }

    /// <summary>Replaces <paramref name="values"/> on every rank by their sum over all ranks.</summary>
    void AllreduceSum(Span<float> values);

    /// <summary>Replaces <paramref name="values"/> on every rank by their sum over all ranks.</summary>
    void AllreduceSum(Span<double> values);

    /// <summary>The largest of every rank's <paramref name="value"/>.</summary>
    long AllreduceMax(long value);

    /// <summary><paramref name="data"/> of rank <paramref name="root"/>, on every rank (others pass null).</summary>
    byte[] Broadcast(byte[]? data, int root = 0);

    /// <summary>
    /// Every rank's <paramref name="values"/> (of any length, zero included) one after another in rank order, on rank
    /// <paramref name="root"/>; null on the others.
    /// </summary>
    float[]? Gather(ReadOnlySpan<float> values, int root = 0);

    /// <summary>Waits until every rank has arrived.</summary>
    void Barrier();
}

/// <summary>One process: every collective is the identity.</summary>
public sealed class SingleProcess : ICommunicator
{
    /// <inheritdoc />
    public int Rank => 0;
    /// <inheritdoc />
    public int Size => 1;
    /// <inheritdoc />
    public void AllreduceSum(Span<float> values) { }
    /// <inheritdoc />
    public void AllreduceSum(Span<double> values) { }
    /// <inheritdoc />
    public long AllreduceMax(long value) => value;
    /// <inheritdoc />
    public byte[] Broadcast(byte[]? data, int root = 0) => data ?? throw new ArgumentNullException(nameof(data));
    /// <inheritdoc />
    public float[]? Gather(ReadOnlySpan<float> values, int root = 0) => values.ToArray();
    /// <inheritdoc />
    public void Barrier() { }
    /// <inheritdoc />
    public void Dispose() { }
}
