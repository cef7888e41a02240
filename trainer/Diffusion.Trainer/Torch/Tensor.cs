using System.Runtime.InteropServices;

namespace Diffusion.Trainer.Torch;

/// <summary>Element types the shim moves (codes shared with shim.cpp).</summary>
public enum DType
{
    /// <summary>float32.</summary>
    Float32 = 0,
    /// <summary>int64.</summary>
    Int64 = 1,
    /// <summary>float64.</summary>
    Float64 = 2,
    /// <summary>uint8.</summary>
    UInt8 = 3,
    /// <summary>bool.</summary>
    Bool = 4,
}

/// <summary>A device: the CPU or CUDA device N.</summary>
public readonly record struct Device(bool IsCuda, int Index)
{
    /// <summary>The CPU.</summary>
    public static Device Cpu => new(false, 0);
    /// <summary>Parses cpu, cuda or cuda:N.</summary>
    public static Device Parse(string text)
    {
        var s = text.Trim().ToLowerInvariant();
        if (s == "cpu") return Cpu;
        if (s == "cuda") return new(true, 0);
        if (s.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(s.AsSpan(5), out var i) && i >= 0) return new(true, i);
        throw new ArgumentException($"--device '{text}': expected cpu, cuda or cuda:N.");
    }
    /// <inheritdoc />
    public override string ToString() => IsCuda ? $"cuda:{Index}" : "cpu";
}

/// <summary>
/// A libtorch tensor behind a SafeHandle. Created inside a <see cref="DisposeScope"/>, it is freed with the scope;
/// otherwise the creator owns it. Names follow TorchSharp/PyTorch so code reads like torch.
/// </summary>
public sealed partial class Tensor : SafeHandle
{
    internal Tensor(IntPtr handle) : base(IntPtr.Zero, ownsHandle: true)
    {
        SetHandle(handle);
        DisposeScope.Current?.Register(this);
    }

    internal DisposeScope? Scope { get; set; }

    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        Native.dt_free(handle);
        return true;
    }

    internal IntPtr H => IsClosed ? throw new ObjectDisposedException(nameof(Tensor)) : handle;

    internal static Tensor From(int status, IntPtr result)
    {
        Native.Check(status);
        return new Tensor(result);
    }

    // ---- creation ----

    /// <summary>A float32 CPU tensor holding a copy of <paramref name="data"/>.</summary>
    public static unsafe Tensor FromArray(ReadOnlySpan<float> data, params long[] shape)
    {
        CheckCount(data.Length, shape);
        fixed (float* p = data) fixed (long* s = shape)
            return From(Native.dt_from_data(p, (int)DType.Float32, s, shape.Length, out var t), t);
    }

    /// <summary>An int64 CPU tensor holding a copy of <paramref name="data"/>.</summary>
    public static unsafe Tensor FromArray(ReadOnlySpan<long> data, params long[] shape)
    {
        CheckCount(data.Length, shape);
        fixed (long* p = data) fixed (long* s = shape)
            return From(Native.dt_from_data(p, (int)DType.Int64, s, shape.Length, out var t), t);
    }

    /// <summary>A tensor filled with <paramref name="value"/>.</summary>
    public static unsafe Tensor Full(long[] shape, double value, DType dtype = DType.Float32, Device device = default)
    {
        fixed (long* s = shape)
            return From(Native.dt_full(s, shape.Length, value, (int)dtype, device.IsCuda ? 1 : 0, device.Index, out var t), t);
    }

    /// <summary>Zeros.</summary>
    public static Tensor Zeros(params long[] shape) => Full(shape, 0);

    /// <summary>0, 1, …, n−1.</summary>
    public static Tensor Arange(long n, DType dtype = DType.Float32) => From(Native.dt_arange(n, (int)dtype, out var t), t);

    /// <summary>N(0, 1) draws.</summary>
    public static Tensor Randn(long[] shape, Generator? generator = null, Device device = default) => Random(0, shape, 0, generator, device);

    /// <summary>U[0, 1) draws.</summary>
    public static Tensor Rand(long[] shape, Generator? generator = null, Device device = default) => Random(1, shape, 0, generator, device);

    /// <summary>Integers uniform in [0, high).</summary>
    public static Tensor RandInt(long high, long[] shape, Generator? generator = null, Device device = default) => Random(2, shape, high, generator, device);

    private static unsafe Tensor Random(int kind, long[] shape, long high, Generator? generator, Device device)
    {
        fixed (long* s = shape)
            return From(Native.dt_random(kind, s, shape.Length, high, generator?.H ?? IntPtr.Zero, device.IsCuda ? 1 : 0, device.Index, out var t), t);
    }

    private static void CheckCount(int count, long[] shape)
    {
        long expected = 1;
        foreach (var d in shape) expected *= d;
        if (expected != count) throw new ArgumentException($"{count} values do not fill shape [{string.Join(",", shape)}].");
    }

    // ---- inspection ----

    /// <summary>Number of dimensions.</summary>
    public int Dim => Native.dt_ndim(H);

    /// <summary>The shape.</summary>
    public unsafe long[] Shape
    {
        get
        {
            var shape = new long[Dim];
            fixed (long* s = shape) Native.Check(Native.dt_shape(H, s));
            return shape;
        }
    }

    /// <summary>Size of dimension <paramref name="d"/> (negative counts from the end).</summary>
    public long Size(int d)
    {
        var s = Shape;
        return s[d < 0 ? s.Length + d : d];
    }

    /// <summary>Number of elements.</summary>
    public long NumberOfElements => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Element type.</summary>
    public DType DType => (DType)Native.dt_dtype(H);

    /// <summary>Whether the tensor lives on a CUDA device.</summary>
    public bool IsCuda => Native.dt_device(H) == 1;

    /// <summary>The values as float32 (copied to the CPU).</summary>
    public unsafe float[] ToFloatArray()
    {
        using var scope = DisposeScope.Enter();
        var t = DType == DType.Float32 ? this : To(Device.Cpu, DType.Float32);
        var data = new float[t.NumberOfElements];
        fixed (float* p = data) Native.Check(Native.dt_copy_out(t.H, p, data.Length * 4L));
        return data;
    }

    /// <summary>The values as int64 (copied to the CPU).</summary>
    public unsafe long[] ToLongArray()
    {
        using var scope = DisposeScope.Enter();
        var t = DType == DType.Int64 ? this : To(Device.Cpu, DType.Int64);
        var data = new long[t.NumberOfElements];
        fixed (long* p = data) Native.Check(Native.dt_copy_out(t.H, p, data.Length * 8L));
        return data;
    }

    /// <summary>The raw bytes of a CPU tensor (any dtype), e.g. a generator state.</summary>
    public unsafe byte[] ToBytes(int elementSize)
    {
        var data = new byte[NumberOfElements * elementSize];
        fixed (byte* p = data) Native.Check(Native.dt_copy_out(H, p, data.Length));
        return data;
    }

    /// <summary>A uint8 tensor of <paramref name="bytes"/>.</summary>
    public static unsafe Tensor FromBytes(ReadOnlySpan<byte> bytes)
    {
        long[] shape = [bytes.Length];
        fixed (byte* p = bytes) fixed (long* s = shape)
            return From(Native.dt_from_data(p, (int)DType.UInt8, s, 1, out var t), t);
    }

    /// <summary>Overwrites a contiguous CPU float32 tensor with <paramref name="data"/>.</summary>
    public unsafe void CopyFrom(ReadOnlySpan<float> data)
    {
        fixed (float* p = data) Native.Check(Native.dt_copy_in(H, p, data.Length * 4L));
    }

    /// <summary>The value of a one-element tensor.</summary>
    public double Item()
    {
        Native.Check(Native.dt_item(H, out var v));
        return v;
    }

    /// <summary>Moves/converts to <paramref name="device"/> and <paramref name="dtype"/>.</summary>
    public Tensor To(Device device, DType? dtype = null) =>
        From(Native.dt_to(H, device.IsCuda ? 1 : 0, device.Index, dtype is null ? -1 : (int)dtype.Value, out var t), t);

    /// <summary>A copy with its own storage.</summary>
    public Tensor Clone() => From(Native.dt_clone(H, out var t), t);

    /// <summary>The same values, cut from the autograd graph.</summary>
    public Tensor Detach() => From(Native.dt_detach(H, out var t), t);

    /// <inheritdoc />
    public override string ToString() => $"Tensor[{string.Join(",", Shape)}] {DType}";
}
