using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Diffusion.Distributed;

/// <summary>
/// The few MPI calls data-parallel training and generation across processes need, through Open MPI's C API
/// (libmpi.so.40, Debian's openmpi-bin / libopenmpi-dev): MPI_Init_thread, Comm_rank/size, in-place Allreduce, Bcast,
/// Gather(v), Barrier, Abort, Finalize. Open MPI's
/// handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) are addresses of exported objects (ompi_mpi_comm_world, …), looked
/// up once; MPICH-family libraries use integer handles and are not supported. Errors return codes
/// (MPI_ERRORS_RETURN on the world communicator) that become <see cref="MpiException"/>s with MPI's own message.
/// </summary>
public sealed class Mpi : ICommunicator
{
    private const string Library = "libmpi.so.40";
    private const int ThreadSerialized = 2; // MPI_THREAD_SERIALIZED: any thread may call, one at a time
    private static readonly IntPtr InPlace = 1; // MPI_IN_PLACE in Open MPI

    private readonly IntPtr _world, _float, _double, _byte, _long, _int, _sum, _max;
    private bool _finalized;

    private Mpi()
    {
        IntPtr library;
        try { library = NativeLibrary.Load(Library); }
        catch (DllNotFoundException e)
        {
            throw new MpiException($"Open MPI's library ({Library}) is not installed: apt-get install openmpi-bin " +
                $"libopenmpi-dev ({e.Message.Split('\n')[0]}).");
        }
        IntPtr Symbol(string name) => NativeLibrary.TryGetExport(library, name, out var address) ? address
            : throw new MpiException($"{Library} has no '{name}': the trainer needs Open MPI (MPICH-family libraries " +
                $"use another ABI).");
        (_world, _float, _double, _byte, _long, _int, _sum, _max) = (Symbol("ompi_mpi_comm_world"),
            Symbol("ompi_mpi_float"), Symbol("ompi_mpi_double"), Symbol("ompi_mpi_byte"), Symbol("ompi_mpi_long"),
            Symbol("ompi_mpi_int"), Symbol("ompi_mpi_op_sum"), Symbol("ompi_mpi_op_max"));
        int argc = 0;
        IntPtr argv = IntPtr.Zero;
        Check(MPI_Init_thread(ref argc, ref argv, ThreadSerialized, out _), "MPI_Init_thread");
        Check(MPI_Comm_set_errhandler(_world, Symbol("ompi_mpi_errors_return")), "MPI_Comm_set_errhandler");
        Check(MPI_Comm_rank(_world, out int rank), "MPI_Comm_rank");
        Check(MPI_Comm_size(_world, out int size), "MPI_Comm_size");
        (Rank, Size) = (rank, size);
    }

    /// <summary>Whether this process was started by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE).</summary>
    public static bool LaunchedByMpirun => Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null;

    /// <summary>Initialises MPI for this process (once; MPI cannot be initialised twice).</summary>
    public static Mpi Initialize() => new();

    /// <inheritdoc />
    public int Rank { get; }
    /// <inheritdoc />
    public int Size { get; }

    /// <inheritdoc />
    public void AllreduceSum(Span<float> values) =>
        Check(MPI_Allreduce(InPlace, ref MemoryMarshal.GetReference(values), values.Length, _float, _sum, _world),
            "MPI_Allreduce");

    /// <inheritdoc />
    public void AllreduceSum(Span<double> values) =>
        Check(MPI_Allreduce(InPlace, ref MemoryMarshal.GetReference(values), values.Length, _double, _sum, _world),
            "MPI_Allreduce");

    /// <inheritdoc />
    public long AllreduceMax(long value)
    {
        Check(MPI_Allreduce(InPlace, ref value, 1, _long, _max, _world), "MPI_Allreduce");
        return value;
    }

    /// <inheritdoc />
    public byte[] Broadcast(byte[]? data, int root = 0)
    {
        long length = Rank == root ? data!.LongLength : 0;
        Check(MPI_Bcast(ref length, 1, _long, root, _world), "MPI_Bcast");
        if (length is < 0 or > int.MaxValue)
            throw new MpiException($"A broadcast of {length:N0} bytes is more than one MPI call carries here.");
        var buffer = Rank == root ? data! : new byte[length];
        if (length > 0) Check(MPI_Bcast(ref buffer[0], (int)length, _byte, root, _world), "MPI_Bcast");
        return buffer;
    }

    /// <inheritdoc />
    public float[]? Gather(ReadOnlySpan<float> values, int root = 0)
    {
        var counts = new int[Rank == root ? Size : 1];
        int mine = values.Length;
        Check(MPI_Gather(ref mine, 1, _int, ref counts[0], 1, _int, root, _world), "MPI_Gather");
        if (Rank != root)
        {
            Check(MPI_Gatherv(ref MemoryMarshal.GetReference(values), mine, _float, ref Unsafe.NullRef<float>(), null,
                null, _float, root, _world), "MPI_Gatherv");
            return null;
        }
        var offsets = new int[Size];
        long total = 0;
        for (int r = 0; r < Size; r++)
        {
            offsets[r] = (int)total;
            total += counts[r];
            if (total > Array.MaxLength)
                throw new MpiException($"A gather of {total:N0} values is more than one array holds.");
        }
        var all = new float[total];
        Check(MPI_Gatherv(ref MemoryMarshal.GetReference(values), mine, _float,
            ref MemoryMarshal.GetArrayDataReference(all), counts, offsets, _float, root, _world), "MPI_Gatherv");
        return all;
    }

    /// <inheritdoc />
    public void Barrier() => Check(MPI_Barrier(_world), "MPI_Barrier");

    /// <summary>Ends every rank's process with <paramref name="code"/> (after a failure only some ranks saw).</summary>
    public void Abort(int code) => MPI_Abort(_world, code);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_finalized) return;
        _finalized = true;
        MPI_Finalize();
    }

    private static void Check(int code, string call)
    {
        if (code == 0) return;
        var text = new byte[512];
        string message = MPI_Error_string(code, text, out int length) == 0
            ? System.Text.Encoding.ASCII.GetString(text, 0, Math.Clamp(length, 0, text.Length)) : $"error {code}";
        throw new MpiException($"{call} failed: {message}.");
    }

    [DllImport(Library)] private static extern int MPI_Init_thread(ref int argc, ref IntPtr argv, int required, out int provided);
    [DllImport(Library)] private static extern int MPI_Comm_set_errhandler(IntPtr comm, IntPtr handler);
    [DllImport(Library)] private static extern int MPI_Comm_rank(IntPtr comm, out int rank);
    [DllImport(Library)] private static extern int MPI_Comm_size(IntPtr comm, out int size);
    [DllImport(Library)] private static extern int MPI_Allreduce(IntPtr send, ref float receive, int count, IntPtr type, IntPtr op, IntPtr comm);
    [DllImport(Library)] private static extern int MPI_Allreduce(IntPtr send, ref double receive, int count, IntPtr type, IntPtr op, IntPtr comm);
    [DllImport(Library)] private static extern int MPI_Allreduce(IntPtr send, ref long receive, int count, IntPtr type, IntPtr op, IntPtr comm);
    [DllImport(Library)] private static extern int MPI_Bcast(ref long buffer, int count, IntPtr type, int root, IntPtr comm);
    [DllImport(Library)] private static extern int MPI_Bcast(ref byte buffer, int count, IntPtr type, int root, IntPtr comm);
    [DllImport(Library)] private static extern int MPI_Gather(ref int send, int sendCount, IntPtr sendType, ref int receive, int receiveCount, IntPtr receiveType, int root, IntPtr comm);
    [DllImport(Library)] private static extern int MPI_Gatherv(ref float send, int sendCount, IntPtr sendType, ref float receive, int[]? receiveCounts, int[]? displacements, IntPtr receiveType, int root, IntPtr comm);
    [DllImport(Library)] private static extern int MPI_Barrier(IntPtr comm);
    [DllImport(Library)] private static extern int MPI_Abort(IntPtr comm, int code);
    [DllImport(Library)] private static extern int MPI_Finalize();
    [DllImport(Library)] private static extern int MPI_Error_string(int code, byte[] text, out int length);
}

/// <summary>An MPI call failed, or MPI is missing.</summary>
public sealed class MpiException(string message) : DiffusionException(message);
