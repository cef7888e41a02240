using System.Buffers;
using SixLabors.ImageSharp.Memory;

namespace Diffusion.Runtime.Imaging;

/// <summary>
/// ImageSharp's allocator for one decode: buffers come from a shared pool, and the bytes held at once may not pass a
/// budget (ImageSharp 2.1 keeps its own allocation limits internal). Exceeding it throws
/// <see cref="InvalidMemoryOperationException"/>, which ImageSharp passes up as it does its own limit.
/// </summary>
internal sealed class BudgetAllocator(MemoryAllocator inner, long budget) : MemoryAllocator
{
    private long _held;

    /// <summary>Whether an allocation was refused.</summary>
    public bool Exceeded { get; private set; }

    /// <summary>The most bytes held at once.</summary>
    public long Peak { get; private set; }

    protected override int GetBufferCapacityInBytes() => 32 << 20;

    public override IMemoryOwner<T> Allocate<T>(int length, AllocationOptions options = AllocationOptions.None)
    {
        long bytes = (long)length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        long held = Interlocked.Add(ref _held, bytes);
        if (held > budget)
        {
            Interlocked.Add(ref _held, -bytes);
            Exceeded = true;
            throw new InvalidMemoryOperationException($"decoding would hold {held:N0} bytes, more than the " +
                $"{budget:N0} allowed");
        }
        lock (this) Peak = Math.Max(Peak, held);
        return new Owner<T>(inner.Allocate<T>(length, options), this, bytes);
    }

    private sealed class Owner<T>(IMemoryOwner<T> buffer, BudgetAllocator allocator, long bytes) : IMemoryOwner<T>
    {
        private int _disposed;

        public Memory<T> Memory => buffer.Memory;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            buffer.Dispose();
            Interlocked.Add(ref allocator._held, -bytes);
        }
    }
}
