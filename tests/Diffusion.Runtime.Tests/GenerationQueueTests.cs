using System.Diagnostics;
using Diffusion.Runtime.Generation;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// The queue a server puts in front of its generator: a fixed number at once on its own threads, a bounded wait,
/// refusals with a retry estimate, and cancellation (caller, time limit, disposal) whether waiting or running.
/// </summary>
public class GenerationQueueTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    /// <summary>Work that holds its slot until <paramref name="release"/> is set (or its token fires).</summary>
    private static Func<CancellationToken, int> Held(ManualResetEventSlim release, int value,
        Action? started = null) => token =>
    {
        started?.Invoke();
        release.Wait(token);
        return value;
    };

    [Fact]
    public async Task Runs_at_most_Concurrency_at_once_and_refuses_past_Capacity_with_a_retry_estimate()
    {
        using var queue = new GenerationQueue(new GenerationQueueOptions { Concurrency = 2, Capacity = 3 });
        using var release = new ManualResetEventSlim();
        int running = 0, peak = 0;
        var tasks = Enumerable.Range(0, 5).Select(i => queue.RunAsync(token =>
        {
            int now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            try { release.Wait(token); }
            finally { Interlocked.Decrement(ref running); }
            return i;
        })).ToList();
        // both taken jobs inside their work (the queue counts a job as running just before its work starts)
        Assert.True(SpinWait.SpinUntil(
            () => queue.Running == 2 && queue.Waiting == 3 && Volatile.Read(ref running) == 2, Patience));
        var full = await Assert.ThrowsAsync<GenerationRefusedException>(() => queue.RunAsync(_ => 0));
        Assert.Equal(GenerationRefusal.QueueFull, full.Reason);
        Assert.True(full.RetryAfter >= TimeSpan.FromSeconds(1), full.RetryAfter.ToString());
        Assert.Contains("2 generation(s) running of 2 at once, 3 request(s) waiting of 3", full.Message);
        release.Set();
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, await Task.WhenAll(tasks));
        Assert.Equal(2, peak);
        Assert.Equal(7, await queue.RunAsync(_ => 7)); // room again
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = target) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }

    [Fact]
    public async Task Work_runs_on_the_queues_own_threads_never_the_callers_or_the_pools()
    {
        using var queue = new GenerationQueue(new GenerationQueueOptions { Concurrency = 1 });
        var (name, pool) = await queue.RunAsync(_ =>
            (Thread.CurrentThread.Name, Thread.CurrentThread.IsThreadPoolThread));
        Assert.Equal("diffusion-generation-0", name);
        Assert.False(pool);
    }

    [Fact]
    public async Task A_waiting_caller_that_leaves_frees_its_place_at_once_and_its_work_never_runs()
    {
        using var queue = new GenerationQueue(new GenerationQueueOptions { Concurrency = 1, Capacity = 1 });
        using var release = new ManualResetEventSlim();
        var first = queue.RunAsync(Held(release, 1));
        Assert.True(SpinWait.SpinUntil(() => queue.Running == 1, Patience));
        using var leave = new CancellationTokenSource();
        bool ran = false;
        var waiting = queue.RunAsync(_ => ran = true, leave.Token);
        Assert.Equal(1, queue.Waiting);
        leave.Cancel();
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Equal(leave.Token, cancelled.CancellationToken);
        Assert.Equal(0, queue.Waiting);
        var next = queue.RunAsync(_ => 2); // the freed place takes a new request although the slot is still busy
        release.Set();
        Assert.Equal(1, await first);
        Assert.Equal(2, await next);
        Assert.False(ran);
    }

    [Fact]
    public async Task A_running_caller_that_leaves_cancels_its_work_through_the_token()
    {
        using var queue = new GenerationQueue(new GenerationQueueOptions { Concurrency = 1 });
        using var never = new ManualResetEventSlim();
        using var started = new ManualResetEventSlim();
        using var leave = new CancellationTokenSource();
        var task = queue.RunAsync(Held(never, 1, started.Set), leave.Token);
        Assert.True(started.Wait(Patience));
        leave.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task);
        Assert.True(SpinWait.SpinUntil(() => queue.Running == 0, Patience));
    }

    [Fact]
    public async Task The_time_limit_counts_the_wait_and_ends_a_request_as_TimedOut()
    {
        using var queue = new GenerationQueue(new GenerationQueueOptions
        {
            Concurrency = 1, Capacity = 4, TimeLimit = TimeSpan.FromMilliseconds(300),
        });
        using var never = new ManualResetEventSlim();
        var running = queue.RunAsync(Held(never, 1));
        // Held too: the first request's deadline passes a few microseconds before this one's, so the worker may still
        // start this one within its limit — then it must be its own token that ends it, not an instant return.
        var waiting = queue.RunAsync(Held(never, 2));
        var watch = Stopwatch.StartNew();
        foreach (var task in new[] { running, waiting })
        {
            var e = await Assert.ThrowsAsync<GenerationRefusedException>(() => task);
            Assert.Equal(GenerationRefusal.TimedOut, e.Reason);
            Assert.Contains("time limit of 0.3 s", e.Message);
        }
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), watch.Elapsed.ToString());
    }

    [Fact]
    public async Task Disposal_refuses_the_waiting_stops_the_running_and_refuses_later_requests()
    {
        var queue = new GenerationQueue(new GenerationQueueOptions { Concurrency = 1, Capacity = 2 });
        using var never = new ManualResetEventSlim();
        using var started = new ManualResetEventSlim();
        var running = queue.RunAsync(Held(never, 1, started.Set));
        var waiting = queue.RunAsync(_ => 2);
        Assert.True(started.Wait(Patience));
        queue.Dispose(); // returns once the running work has seen its token
        foreach (var task in new[] { running, waiting })
            Assert.Equal(GenerationRefusal.Stopping,
                (await Assert.ThrowsAsync<GenerationRefusedException>(() => task)).Reason);
        Assert.Equal(GenerationRefusal.Stopping,
            (await Assert.ThrowsAsync<GenerationRefusedException>(() => queue.RunAsync(_ => 3))).Reason);
        queue.Dispose(); // twice: nothing happens
    }

    [Fact]
    public async Task A_failing_work_item_passes_its_exception_and_frees_its_slot()
    {
        using var queue = new GenerationQueue(new GenerationQueueOptions { Concurrency = 1, Capacity = 0 });
        await Assert.ThrowsAsync<InvalidDataException>(() =>
            queue.RunAsync<int>(_ => throw new InvalidDataException()));
        // the slot is freed just after the task ends (no room is kept for it: Capacity 0)
        Assert.True(SpinWait.SpinUntil(() => queue.Running == 0, Patience));
        Assert.Equal(5, await queue.RunAsync(_ => 5));
    }

    [Fact]
    public async Task Generations_through_the_queue_equal_direct_ones_and_bad_requests_are_refused_before_queueing()
    {
        using var model = Fixtures.Gaussian();
        var generator = new ImageGenerator(model);
        using var queue = new GenerationQueue(new GenerationQueueOptions { Concurrency = 2, Capacity = 16 });
        var requests = Enumerable.Range(0, 8).Select(i => new GenerationRequest
        {
            Sampler = i % 2 == 0 ? "ddim" : "dpm++2m", Steps = 10, Count = 3, BatchSize = 2, Seed = (ulong)i,
        }).ToArray();
        var queued = await Task.WhenAll(requests.Select(r => queue.GenerateAsync(generator, r)));
        for (int i = 0; i < requests.Length; i++)
            Assert.Equal(generator.Generate(requests[i]).Images, queued[i].Images);
        using var never = new ManualResetEventSlim();
        using var busy = new GenerationQueue(new GenerationQueueOptions { Concurrency = 1, Capacity = 0 });
        var hold = busy.RunAsync(Held(never, 0));
        // a full queue still answers a bad request with what is wrong with it, not with "full"
        var bad = Assert.Throws<DiffusionArgumentException>(void () =>
            _ = busy.GenerateAsync(generator, requests[0] with { Sampler = new string('x', 5_000_000) }));
        Assert.Equal("Sampler", bad.Parameter);
        Assert.True(bad.Message.Length < 600, $"{bad.Message.Length} characters");
        never.Set();
        await hold;
    }

    [Theory]
    [InlineData(0, 1, "Concurrency")]
    [InlineData(1, -1, "Capacity")]
    public void Options_out_of_range_are_refused_by_name(int concurrency, int capacity, string parameter) =>
        Assert.Equal(parameter, Assert.Throws<DiffusionArgumentException>(() => new GenerationQueue(
            new GenerationQueueOptions { Concurrency = concurrency, Capacity = capacity })).Parameter);
}
