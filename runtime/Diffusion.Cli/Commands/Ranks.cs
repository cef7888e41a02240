using System.CommandLine;
using System.Runtime.ExceptionServices;
using Diffusion.Distributed;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Cli.Commands;

/// <summary>
/// Generation across processes (<c>sample</c>, <c>img2img</c>, <c>inpaint</c>, <c>eval</c> with
/// <c>--processes N</c>): N ranks under mpirun (the trainer's launcher), each generating its share of the images —
/// whole micro-batches, so that every image is made in the same batch as in one process and keyed noise makes it
/// bit-identical to one process's — gathered on rank 0, which alone writes and reports. One rank per GPU with
/// <c>--device cuda</c> (<c>cuda:</c> the rank's index on its machine); on the CPU the cores are shared out. A failure
/// on any rank ends every rank, with one line from the lowest failing rank.
/// </summary>
public sealed class Ranks : IDisposable
{
    private Ranks(ICommunicator world) => World = world;

    /// <summary>The ranks of this run (one process outside mpirun).</summary>
    public ICommunicator World { get; }

    /// <summary>Whether this rank speaks for the run (writes, reports).</summary>
    public bool IsRoot => World.Rank == 0;

    /// <summary>--processes.</summary>
    public static Option<int> Option() => new("--processes")
    {
        Description = "Generate with N processes under Open MPI's mpirun, each its share of the images (the same " +
            "images as one process); with --device cuda one per GPU (cuda:local rank).",
        DefaultValueFactory = _ => 1,
    };

    /// <summary>
    /// With <c>--processes N</c> &gt; 1 outside mpirun: this command line again as N ranks under mpirun, and its exit
    /// code; otherwise null (run here).
    /// </summary>
    public static async Task<int?> Launch(ParseResult p, Option<int> processes, CliConsole console,
        CancellationToken cancellation)
    {
        int n = p.GetValue(processes);
        if (n is < 1 or > 1024) throw new DiffusionArgumentException("--processes", $"expected 1…1024, got {n}.");
        if (n == 1 || Mpi.LaunchedByMpirun) return null;
        string[] tokens = [.. p.Tokens.Select(t => t.Value)];
        return await Launcher.RunUnderMpirun(n, tokens, console.Out, console.Error, cancellation, quiet: true);
    }

    /// <summary>This process's place in the run: MPI's world under mpirun, else one process.</summary>
    public static Ranks Join() => new(Mpi.LaunchedByMpirun ? Mpi.Initialize() : new SingleProcess());

    /// <summary>
    /// <paramref name="settings"/> for this rank: under several ranks, <c>cuda</c> without an index becomes the rank's
    /// GPU on its machine, and the CPU's threads (unless given) are the cores shared out among the machine's ranks.
    /// </summary>
    public SessionSettings ForThisRank(SessionSettings settings, bool deviceIndexGiven) => World.Size == 1 ? settings
        : settings with
        {
            Device = settings.Device.IsCuda && !deviceIndexGiven ? ExecutionDevice.Cuda(Launcher.LocalRank)
                : settings.Device,
            IntraOpThreads = settings.IntraOpThreads == 0 && !settings.Device.IsCuda ? Launcher.ThreadsPerRank()
                : settings.IntraOpThreads,
        };

    /// <summary>
    /// Runs <paramref name="local"/> on every rank, then agrees on the outcome: where it failed on any rank, the
    /// lowest failing rank rethrows its exception (for <see cref="CliConsole.Guard"/> to report in one line) and every
    /// other rank ends quietly with that failure's exit code. Nothing collective may happen inside.
    /// </summary>
    public async Task<T> Collectively<T>(Func<Task<T>> local)
    {
        T value = default!;
        Exception? failure = null;
        try { value = await local(); }
        catch (Exception e) { failure = e; }
        if (World.Size == 1)
        {
            if (failure is not null) ExceptionDispatchInfo.Throw(failure);
            return value;
        }
        // The lowest failing rank and its exit code, in one allreduce: (size − rank) · 256 + code, largest wins.
        long mine = failure is null ? 0 : (long)(World.Size - World.Rank) * 256 + CliConsole.ExitCodeOf(failure) % 256;
        long agreed = World.AllreduceMax(mine);
        if (agreed == 0) return value;
        (value as IDisposable)?.Dispose();
        if (failure is not null && World.Size - agreed / 256 == World.Rank) ExceptionDispatchInfo.Throw(failure);
        throw new FailedElsewhere((int)(agreed % 256));
    }

    /// <summary>
    /// Image indices [First, First + Count) of this rank's share of <paramref name="count"/> images made in
    /// micro-batches of <paramref name="batchSize"/>.
    /// </summary>
    public (int First, int Count) Share(int count, int batchSize) => Share(count, batchSize, World.Size, World.Rank);

    /// <summary>
    /// Rank <paramref name="rank"/>'s share of <paramref name="count"/> images in micro-batches of
    /// <paramref name="batchSize"/> among <paramref name="ranks"/> ranks: a contiguous run of whole batches, the
    /// batches dealt out as evenly as they divide (the last, short batch on the last rank, as in one process).
    /// </summary>
    public static (int First, int Count) Share(int count, int batchSize, int ranks, int rank)
    {
        if (ranks > count)
            throw new DiffusionArgumentException("--processes",
                $"{ranks} processes for {count} images: each process needs at least one image.");
        long batches = (count + (long)batchSize - 1) / batchSize;
        if (ranks > batches)
            throw new DiffusionArgumentException("--processes",
                $"{ranks} processes for {batches} batch{(batches == 1 ? "" : "es")} of {batchSize}: each process " +
                    "needs at least one batch; give a smaller --batch.");
        int Start(int r) => (int)Math.Min(count, batches * r / ranks * batchSize);
        int first = Start(rank);
        return (first, Start(rank + 1) - first);
    }

    /// <summary>
    /// The request's share for this rank: images [first, first + n) of it, with their noise keys
    /// (<see cref="GenerationRequest.FirstImage"/>) and their slices of every per-image array.
    /// </summary>
    public static GenerationRequest Slice(GenerationRequest r, int first, int n, int pixelSize, int noiseSize)
    {
        if (first == 0 && n == r.Count) return r;
        float[]? Cut(float[]? values, int size) => values?.AsSpan(first * size, n * size).ToArray();
        return r with
        {
            Count = n,
            FirstImage = r.FirstImage + first,
            ClassLabels = r.ClassLabels.Length == r.Count ? r.ClassLabels[first..(first + n)] : r.ClassLabels,
            InitialNoise = Cut(r.InitialNoise, noiseSize),
            InitialImages = Cut(r.InitialImages, pixelSize),
            KnownImages = Cut(r.KnownImages, pixelSize),
            Mask = Cut(r.Mask, pixelSize),
        };
    }

    /// <summary>
    /// Every rank's share of the images (and latents) on rank 0, in image order, with the network's use summed and
    /// the slowest rank's times; null on the other ranks.
    /// </summary>
    public GenerationResult? Gather(GenerationResult mine)
    {
        if (World.Size == 1) return mine;
        var images = World.Gather(mine.Images);
        var latents = World.Gather(mine.Latents ?? []);
        var sums = new double[] { mine.NetworkCalls, mine.EvaluationsPerImage * mine.Count, mine.Count };
        World.AllreduceSum(sums);
        var slowest = new[]
        {
            mine.TotalTime.Ticks, mine.ModelTime.Ticks, mine.TextEncoderTime.Ticks, mine.VaeTime.Ticks,
        }.Select(World.AllreduceMax).ToArray();
        if (images is null) return null;
        int count = (int)sums[2];
        return mine with
        {
            Images = images, Count = count, Latents = mine.Latents is null ? null : latents,
            NetworkCalls = (long)sums[0], EvaluationsPerImage = sums[1] / count,
            TotalTime = TimeSpan.FromTicks(slowest[0]), ModelTime = TimeSpan.FromTicks(slowest[1]),
            TextEncoderTime = TimeSpan.FromTicks(slowest[2]), VaeTime = TimeSpan.FromTicks(slowest[3]),
        };
    }

    /// <inheritdoc />
    public void Dispose() => World.Dispose();
}
