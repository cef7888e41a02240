using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// Copies a fixed list of tensors into another (host ↔ device) through ONNX Runtime's <c>CopyTensors</c>, which uses
/// the data transfer the execution provider registered. The C# API's <see cref="OrtEnv.CopyTensors"/> builds two
/// handle arrays per call; a sampling loop calls this twice per step, so the handles are gathered once here and the
/// same native entry point is called with them. Where that entry point cannot be found (another API build) the
/// official call is used, and any failure is reported through it, with ORT's own message. ORT registers no data
/// transfer for CPU ↔ CPU, so between two CPU tensors (the staged binding's test on the CPU) it is a plain copy.
/// </summary>
internal sealed unsafe class TensorCopy
{
    [UnmanagedFunctionPointer(CallingConvention.Winapi)]
    private delegate IntPtr CopyTensorsFunction(IntPtr env, IntPtr[] source, IntPtr[] destination, IntPtr stream,
        UIntPtr count);

    private static readonly Lazy<CopyTensorsFunction?> Native = new(FindNative);

    private readonly OrtValue[] _source, _destination;
    private readonly IntPtr[] _sourceHandles, _destinationHandles;
    private readonly IntPtr _env;
    private readonly bool _direct;
    private readonly (IntPtr Source, IntPtr Destination, int Bytes)[]? _cpuToCpu;

    /// <summary>
    /// A copy of each <paramref name="source"/> tensor into the same-sized <paramref name="destination"/> tensor;
    /// <paramref name="throughOnnxRuntime"/> (tests) sends CPU ↔ CPU copies to ORT too.
    /// </summary>
    public TensorCopy(IReadOnlyList<OrtValue> source, IReadOnlyList<OrtValue> destination,
        bool throughOnnxRuntime = false)
    {
        if (source.Count != destination.Count) throw new ArgumentException("source and destination differ in length");
        _source = [.. source];
        _destination = [.. destination];
        _sourceHandles = [.. source.Select(HandleOf)];
        _destinationHandles = [.. destination.Select(HandleOf)];
        _env = OrtEnv.Instance().DangerousGetHandle();
        _direct = !_sourceHandles.Concat(_destinationHandles).Contains(IntPtr.Zero);
        if (!throughOnnxRuntime && _source.Concat(_destination).All(IsCpuMemory))
            _cpuToCpu = [.. _source.Zip(_destination, (from, to) => (Address(from), Address(to), Bytes(from, to)))];
    }

    /// <summary>Copies every source tensor into its destination (synchronously: no stream).</summary>
    public void Run()
    {
        if (_cpuToCpu is not null)
        {
            foreach (var (from, to, bytes) in _cpuToCpu)
                new ReadOnlySpan<byte>((void*)from, bytes).CopyTo(new Span<byte>((void*)to, bytes));
            return;
        }
        // A failed native call leaves its status unreleased (error path only); the official call then reports it.
        if (_direct && Native.Value is { } copy
            && copy(_env, _sourceHandles, _destinationHandles, IntPtr.Zero, (UIntPtr)_source.Length) == IntPtr.Zero)
            return;
        OrtEnv.Instance().CopyTensors(_source, _destination, null);
    }

    /// <summary>
    /// Whether the allocation-free native call is available (else each copy goes through the official API).
    /// </summary>
    internal static bool CanCallDirectly => Native.Value is not null && HandleProperty is not null;

    private static bool IsCpuMemory(OrtValue value)
    {
        using var info = value.GetTensorMemoryInfo();
        return info.Name == "Cpu";
    }

    private static IntPtr Address(OrtValue value) =>
        (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetReference(value.GetTensorMutableRawData()));

    private static int Bytes(OrtValue from, OrtValue to)
    {
        int bytes = from.GetTensorMutableRawData().Length;
        if (to.GetTensorMutableRawData().Length != bytes)
            throw new ArgumentException("source and destination tensors differ in size");
        return bytes;
    }

    private static readonly PropertyInfo? HandleProperty = typeof(OrtValue).GetProperty("Handle",
        BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);

    /// <summary>
    /// The native OrtValue* (internal to the API; zero where it cannot be read, which sends every call the official
    /// way).
    /// </summary>
    private static IntPtr HandleOf(OrtValue value) => HandleProperty?.GetValue(value) is IntPtr handle ? handle
        : IntPtr.Zero;

    /// <summary>
    /// The API's own bound entry point (NativeMethods.OrtCopyTensors), as a delegate that takes our arrays.
    /// </summary>
    private static CopyTensorsFunction? FindNative()
    {
        try
        {
            var field = typeof(OrtEnv).Assembly.GetType("Microsoft.ML.OnnxRuntime.NativeMethods")
                ?.GetField("OrtCopyTensors", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static);
            if (field?.GetValue(null) is not Delegate bound) return null;
            return Marshal.GetDelegateForFunctionPointer<CopyTensorsFunction>(Marshal.GetFunctionPointerForDelegate(bound));
        }
        catch (Exception e) when (e is ArgumentException or MemberAccessException or NotSupportedException
            or TargetInvocationException)
        {
            return null;
        }
    }
}
