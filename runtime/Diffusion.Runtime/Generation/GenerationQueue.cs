using System.Diagnostics;

namespace Diffusion.Runtime.Generation;

/// <summary>How a <see cref="GenerationQueue"/> admits work.</summary>
public sealed record GenerationQueueOptions
{
    /// <summary>
    /// The default <see cref="Concurrency"/>: half the logical processors, at least one. Each generation's network
    /// calls already spread over ONNX Runtime's intra-op threads; a second generation per pair of processors keeps them
    /// busy while the first does its sampler arithmetic, and more only add memory.
    /// </summary>
    public static int DefaultConcurrency => Math.Max(1, Environment.ProcessorCount / 2);

    /// <summary>Generations that run at once, each on a thread of the queue's own (never the thread pool's).</summary>
    public int Concurrency { get; init; } = DefaultConcurrency;

    /// <summary>Requests that may wait for a free generation; one more is refused with
    /// <see cref="GenerationRefusal.QueueFull"/>.</summary>
    public int Capacity { get; init; } = 4 * DefaultConcurrency;

    /// <summary>
    /// How long a request may take from its arrival, waiting included; past it, it is cancelled within one sampling
    /// step and refused as <see cref="GenerationRefusal.TimedOut"/>. <see cref="Timeout.InfiniteTimeSpan"/>: no limit.
    /// </summary>
    public TimeSpan TimeLimit { get; init; } = Timeout.InfiniteTimeSpan;

    internal void Validate()
    {
        if (Concurrency is < 1 or > 1024)
            throw new DiffusionArgumentException(nameof(Concurrency),
                $"expected 1…1024 generations, got {Concurrency}.");
        if (Capacity is < 0 or > 1_000_000)
            throw new DiffusionArgumentException(nameof(Capacity),
                $"expected 0…1,000,000 waiting requests, got {Capacity}.");
        if (TimeLimit != Timeout.InfiniteTimeSpan && TimeLimit <= TimeSpan.Zero)
            throw new DiffusionArgumentException(nameof(TimeLimit),
                $"expected a positive time (or Timeout.InfiniteTimeSpan), got {TimeLimit}.");
    }
}

/// <summary>Why a <see cref="GenerationQueue"/> did not produce a result.</summary>
public enum GenerationRefusal
{
    /// <summary>
    /// Every generation slot was busy and the queue held <see cref="GenerationQueueOptions.Capacity"/>.
    /// </summary>
    QueueFull,
    /// <summary>The request ran past <see cref="GenerationQueueOptions.TimeLimit"/>.</summary>
    TimedOut,
    /// <summary>The queue is being disposed (the server is stopping).</summary>
    Stopping,
}

/// <summary>A request the queue refused or gave up on, with when a retry may succeed.</summary>
public sealed class GenerationRefusedException(GenerationRefusal reason, TimeSpan retryAfter, string message)
    : DiffusionException(message)
{
    /// <summary>Why.</summary>
    public GenerationRefusal Reason { get; } = reason;
    /// <summary>The queue's estimate of when it could take the request (whole seconds, at least one).</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Admission control for a server: runs at most <see cref="GenerationQueueOptions.Concurrency"/> generations at once on
/// its own threads, keeps at most <see cref="GenerationQueueOptions.Capacity"/> waiting (refusing more at once, with a
/// retry estimate), and cancels a request when its caller's token fires (a client hanging up), when it runs past the
/// time limit, or when the queue is disposed — whether it is still waiting (it leaves the queue at once) or sampling
/// (within one step). Request threads only await; a burst never starves the thread pool.
/// </summary>
public sealed class GenerationQueue : IDisposable
{
    private readonly object _gate = new();
    private readonly LinkedList<Job> _waiting = new();
    private readonly Thread[] _workers;
    private readonly CancellationTokenSource _stopping = new();
    private int _running;
    private bool _disposed;
    private double _meanSeconds; // exponentially weighted mean duration of finished work; 0 until one finishes

    /// <summary>Starts the queue's generation threads.</summary>
    public GenerationQueue(GenerationQueueOptions? options = null)
    {
        Options = options ?? new();
        Options.Validate();
        _workers = new Thread[Options.Concurrency];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"diffusion-generation-{i}" };
            _workers[i].Start();
        }
    }

    /// <summary>The limits.</summary>
    public GenerationQueueOptions Options { get; }

    /// <summary>Requests being generated now.</summary>
    public int Running { get { lock (_gate) return _running; } }

    /// <summary>Requests waiting for a generation slot.</summary>
    public int Waiting { get { lock (_gate) return _waiting.Count; } }

    /// <summary>
    /// Checks <paramref name="request"/> at once (a bad one is refused without waiting), then generates it when a slot
    /// is free.
    /// </summary>
    /// <remarks>
    /// A bad request throws at once; the task ends with <see cref="GenerationRefusedException"/> when the queue is
    /// full, the time limit passed or the queue is stopping, and is cancelled when <paramref name="cancellation"/>
    /// fires.
    /// </remarks>
    public Task<GenerationResult> GenerateAsync(IImageGenerator generator, GenerationRequest request,
        IProgress<GenerationProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(request);
        generator.Check(request);
        return RunAsync(token => generator.Generate(request, progress, token), cancellation);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a generation thread when a slot is free; the token it is given fires on the
    /// caller's cancellation, the time limit, or disposal.
    /// </summary>
    public Task<T> RunAsync<T>(Func<CancellationToken, T> work, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (cancellation.IsCancellationRequested) return Task.FromCanceled<T>(cancellation);
        var job = new Job<T>(work, cancellation, _stopping.Token, Options.TimeLimit);
        // Leaving while waiting frees the place at once; once running, the work itself sees the token.
        job.Registration = job.Token.Register(() => Abandon(job));
        lock (_gate)
        {
            if (_disposed)
            {
                job.Dispose();
                return Task.FromException<T>(Refusal(GenerationRefusal.Stopping, "the generation queue is stopping."));
            }
            if (_running + _waiting.Count >= Options.Concurrency + Options.Capacity)
            {
                job.Dispose();
                return Task.FromException<T>(Refusal(GenerationRefusal.QueueFull, $"the server is full: {_running} "
                    + $"generation(s) running of {Options.Concurrency} at once, {_waiting.Count} request(s) waiting of "
                    + $"{Options.Capacity}; retry later."));
            }
            job.Node = _waiting.AddLast(job);
            Monitor.Pulse(_gate);
        }
        return job.Task;
    }

    /// <summary>The estimated wait for a request arriving now: whole seconds, at least one.</summary>
    public TimeSpan RetryAfter
    {
        get
        {
            lock (_gate) return Estimate();
        }
    }

    private TimeSpan Estimate()
    {
        double rounds = (double)(_running + _waiting.Count + 1) / Options.Concurrency;
        double seconds = Math.Ceiling(Math.Max(1, rounds * _meanSeconds));
        return TimeSpan.FromSeconds(Math.Min(seconds, 24 * 3600));
    }

    private GenerationRefusedException Refusal(GenerationRefusal reason, string message) =>
        new(reason, Estimate(), message);

    private void Abandon(Job job)
    {
        lock (_gate)
        {
            if (job.Node is null) return; // taken by a generation thread, which sees the token
            _waiting.Remove(job.Node);
            job.Node = null;
        }
        job.Fail(Ending(job));
    }

    /// <summary>Why <paramref name="job"/>'s token fired, as the exception its task ends with.</summary>
    private Exception Ending(Job job)
    {
        if (job.Caller.IsCancellationRequested) return new OperationCanceledException(job.Caller);
        lock (_gate)
        {
            if (_stopping.IsCancellationRequested)
                return Refusal(GenerationRefusal.Stopping, "the generation queue stopped before the request finished.");
            return Refusal(GenerationRefusal.TimedOut, $"the request ran past its time limit of "
                + $"{Options.TimeLimit.TotalSeconds:0.#} s ({job.Waited.TotalSeconds:0.#} s waiting for a generation "
                + "slot); ask for fewer images or steps, or retry later.");
        }
    }

    private void Work()
    {
        while (true)
        {
            Job job;
            lock (_gate)
            {
                while (_waiting.Count == 0 && !_disposed) Monitor.Wait(_gate);
                if (_waiting.Count == 0) return; // disposed and drained
                job = _waiting.First!.Value;
                _waiting.RemoveFirst();
                job.Node = null;
                _running++;
            }
            var watch = Stopwatch.StartNew();
            try
            {
                job.Run(this);
            }
            finally
            {
                lock (_gate)
                {
                    _running--;
                    double seconds = watch.Elapsed.TotalSeconds;
                    _meanSeconds = _meanSeconds == 0 ? seconds : 0.8 * _meanSeconds + 0.2 * seconds;
                }
            }
        }
    }

    /// <summary>
    /// Stops taking requests, refuses the waiting ones and cancels the running ones (<see cref="GenerationRefusal.
    /// Stopping"/>), and returns when every generation thread has finished.
    /// </summary>
    public void Dispose()
    {
        List<Job> waiting;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            waiting = [.. _waiting];
            _waiting.Clear();
            foreach (var job in waiting) job.Node = null;
            Monitor.PulseAll(_gate);
        }
        _stopping.Cancel();
        foreach (var job in waiting) job.Fail(Ending(job));
        foreach (var worker in _workers) worker.Join();
        // _stopping stays undisposed (it holds no timer or handle): a late RunAsync still links to its token.
    }

    private abstract class Job : IDisposable
    {
        private readonly CancellationTokenSource _token;
        private readonly long _arrived = Stopwatch.GetTimestamp();
        private long _started;

        protected Job(CancellationToken caller, CancellationToken stopping, TimeSpan limit)
        {
            Caller = caller;
            _token = CancellationTokenSource.CreateLinkedTokenSource(caller, stopping);
            if (limit != Timeout.InfiniteTimeSpan) _token.CancelAfter(limit);
        }

        public CancellationToken Caller { get; }
        public CancellationToken Token => _token.Token;
        public LinkedListNode<Job>? Node { get; set; } // guarded by the queue's gate
        public CancellationTokenRegistration Registration { get; set; }
        public TimeSpan Waited => _started == 0 ? Stopwatch.GetElapsedTime(_arrived)
            : Stopwatch.GetElapsedTime(_arrived, _started);

        public void Run(GenerationQueue queue)
        {
            _started = Stopwatch.GetTimestamp();
            try
            {
                Token.ThrowIfCancellationRequested();
                Complete();
            }
            catch (OperationCanceledException) when (Token.IsCancellationRequested)
            {
                Fail(queue.Ending(this));
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }

        protected abstract void Complete();
        public abstract void Fail(Exception e);

        public void Dispose()
        {
            Registration.Dispose();
            _token.Dispose();
        }
    }

    private sealed class Job<T>(Func<CancellationToken, T> work, CancellationToken caller, CancellationToken stopping,
        TimeSpan limit) : Job(caller, stopping, limit)
    {
        private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<T> Task => _result.Task;

        protected override void Complete()
        {
            var value = work(Token);
            if (_result.TrySetResult(value)) Dispose();
        }

        public override void Fail(Exception e)
        {
            bool set = e is OperationCanceledException { CancellationToken: var t } && t == Caller
                ? _result.TrySetCanceled(Caller)
                : _result.TrySetException(e);
            if (set) Dispose();
        }
    }
}
