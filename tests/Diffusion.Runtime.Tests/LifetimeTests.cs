using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// A model may be disposed at any moment: running generations end (with their images or with
/// <see cref="ObjectDisposedException"/>), later calls throw it, and nothing reaches a freed ONNX Runtime session
/// (which would end the process with SIGSEGV instead).
/// </summary>
public class LifetimeTests
{
    private static GenerationRequest Long(ulong seed) => new()
    {
        Sampler = "ddpm", Steps = 400, Count = 64, BatchSize = 16, Seed = seed,
    };

    [Fact]
    public async Task Disposing_mid_generation_100_times_under_load_ends_every_call_cleanly()
    {
        var random = new Random(11);
        int finished = 0, stopped = 0;
        for (int round = 0; round < 100; round++)
        {
            var model = Fixtures.Gaussian();
            var generator = new ImageGenerator(model);
            // four generations at once on the one model, disposed after 0–20 ms (some not yet started, most mid-loop)
            var calls = Enumerable.Range(0, 4).Select(i => generator.GenerateAsync(Long((ulong)(round * 4 + i))))
                .ToArray();
            Thread.Sleep(random.Next(21));
            model.Dispose();
            Assert.True(model.IsDisposed);
            foreach (var call in calls)
            {
                try
                {
                    Assert.Equal(64 * 64, (await call).Images.Length);
                    finished++;
                }
                catch (ObjectDisposedException)
                {
                    stopped++;
                }
            }
            Assert.Throws<ObjectDisposedException>(() => generator.Generate(Long(1)));
            Assert.Throws<ObjectDisposedException>(() => model.Session);
            model.Dispose(); // twice: nothing happens
        }
        Assert.True(stopped > 0, "disposal should have stopped some generations");
        Assert.Equal(400, finished + stopped);
    }

    [Fact]
    public async Task Dispose_waits_for_the_running_network_call_and_stops_the_loop_within_a_step()
    {
        var model = Fixtures.Gaussian();
        int stepsAfterDispose = 0;
        var disposed = new ManualResetEventSlim();
        var started = new ManualResetEventSlim();
        var progress = new SynchronousProgress(_ =>
        {
            started.Set();
            if (disposed.IsSet) Interlocked.Increment(ref stepsAfterDispose);
        });
        var call = Task.Run(() => new ImageGenerator(model).Generate(Long(3) with { Count = 16 }, progress));
        Assert.True(started.Wait(TimeSpan.FromSeconds(30)));
        model.Dispose();
        disposed.Set();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => call);
        Assert.True(stepsAfterDispose <= 1, $"{stepsAfterDispose} steps ran after Dispose returned");
    }

    [Fact]
    public async Task Dispose_from_inside_a_progress_callback_does_not_deadlock()
    {
        var model = Fixtures.Gaussian();
        var progress = new SynchronousProgress(_ => model.Dispose());
        var call = Task.Run(() => new ImageGenerator(model).Generate(Long(5) with { Count = 16 }, progress));
        Assert.Same(call, await Task.WhenAny(call, Task.Delay(TimeSpan.FromSeconds(30))));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => call);
        Assert.True(model.IsDisposed);
    }

    [Fact]
    public async Task Null_arguments_are_ArgumentNullExceptions()
    {
        using var model = Fixtures.Gaussian();
        var generator = new ImageGenerator(model);
        Assert.Equal("model", Assert.Throws<ArgumentNullException>(() => new ImageGenerator(null!)).ParamName);
        Assert.Equal("request", Assert.Throws<ArgumentNullException>(() => generator.Generate(null!)).ParamName);
        Assert.Equal("request",
            (await Assert.ThrowsAsync<ArgumentNullException>(() => generator.GenerateAsync(null!))).ParamName);
        Assert.Equal("nameOrId", Assert.Throws<ArgumentNullException>(() => model.ResolveClass(null!)).ParamName);
        Assert.Equal("ClassLabels",
            Assert.Throws<ArgumentNullException>(() => new GenerationRequest { ClassLabels = null! }).ParamName);
        Assert.Equal("Options",
            Assert.Throws<ArgumentNullException>(() => new GenerationRequest { Options = null! }).ParamName);
    }

    /// <summary>
    /// An <see cref="IProgress{T}"/> that reports on the sampling thread (Progress posts to the pool).
    /// </summary>
    private sealed class SynchronousProgress(Action<GenerationProgress> report) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value) => report(value);
    }
}
