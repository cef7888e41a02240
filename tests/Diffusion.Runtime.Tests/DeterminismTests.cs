using Diffusion.Runtime.Generation;

namespace Diffusion.Runtime.Tests;

public class DeterminismTests
{
    [Theory]
    [InlineData("ddpm")]
    [InlineData("pc")]
    [InlineData("dpm++2m-sde")]
    [InlineData("dpm++3m-sde")]
    [InlineData("euler-ancestral")]
    [InlineData("rk45")]
    [InlineData("unipc")]
    public void Image_i_is_bit_identical_at_batch_1_and_batch_7(string sampler)
    {
        using var model = Fixtures.Gaussian();
        var batched = Fixtures.Generate(model, sampler, 12, count: 9, batch: 7, seed: 5);
        var single = Fixtures.Generate(model, sampler, 12, count: 9, batch: 1, seed: 5);
        Assert.Equal(single.Images, batched.Images);
        var again = Fixtures.Generate(model, sampler, 12, count: 9, batch: 7, seed: 5);
        Assert.Equal(batched.Images, again.Images);
        var otherSeed = Fixtures.Generate(model, sampler, 12, count: 9, batch: 7, seed: 6);
        Assert.NotEqual(batched.Images, otherSeed.Images);
    }

    [Fact]
    public void Caller_supplied_initial_noise_is_used()
    {
        using var model = Fixtures.Gaussian();
        var seeded = Fixtures.Generate(model, "ddim", 10, count: 3, batch: 3, seed: 11);
        var noise = new float[3 * model.ImageSize];
        new Noise.NoiseGenerator(11).Fill(noise, 0, model.ImageSize, 0);
        var given = new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "ddim", Steps = 10, Count = 3, BatchSize = 3, Seed = 999, InitialNoise = noise,
        });
        Assert.Equal(seeded.Images, given.Images);
    }

    [Fact]
    public void Micro_batches_cover_every_image_and_count_network_calls()
    {
        using var model = Fixtures.Gaussian();
        var r = Fixtures.Generate(model, "heun", 10, count: 10, batch: 4);
        Assert.Equal(3 * 19, r.NetworkCalls); // 3 batches × (2 NFE × 9 steps + 1 for the last Euler step)
        Assert.Equal(19, r.EvaluationsPerImage);
        Assert.Equal(10 * model.ImageSize, r.Images.Length);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)] // device twins and explicit copies around each run: the CUDA-graph data flow, on the CPU
    [InlineData(false, true)] // a float16 graph (buffers converted per call) conditioned and guided
    public void The_sampling_loop_allocates_nothing_per_step_after_warm_up(bool staged, bool float16Guided)
    {
        using var model = Fixtures.Load(Fixtures.Spec() with
        {
            MeanInput = float16Guided ? "encoder_hidden_states" : null, Float16 = float16Guided,
        }, new Onnx.ModelOptions
        {
            Session = new Onnx.SessionSettings { StageThroughDeviceBuffers = staged }
        });
        Conditioning.Condition Embedding(float mean) => Conditioning.Condition.None.With("encoder_hidden_states",
            Conditioning.ConditioningTensor.FromFloats([mean, mean, mean], 1, 3, 1));
        using var denoiser = new Samplers.Denoiser(model, 4, float16Guided
            ? new Conditioning.Conditions { Conditional = Embedding(0.4f), Unconditional = Embedding(0), Guidance = 3 }
            : null);
        foreach (var entry in Samplers.SamplerRegistry.All)
        {
            var sampler = entry.Create(new Samplers.SamplerOptions());
            long Allocated(int steps)
            {
                var grid = Schedules.SamplingGrid.Create(model.Schedule, steps, new Schedules.GridOptions());
                var context = new Samplers.SamplingContext(denoiser, grid, seed: 1);
                context.Begin(0);
                context.DrawInitialNoise(context.X);
                sampler.Sample(context); // warm-up: allocates this context's buffers
                context.Begin(0);
                context.DrawInitialNoise(context.X);
                long before = GC.GetAllocatedBytesForCurrentThread();
                sampler.Sample(context);
                return GC.GetAllocatedBytesForCurrentThread() - before;
            }
            Allocated(10);
            // A tier-up of the JIT during one call allocates on this thread too: that noise only ever adds, so each
            // length's least of three runs is its true cost. One object per step (≥ 24 bytes) would add ≥ 2400 bytes
            // over the 100 extra steps.
            long Least(int steps) => Enumerable.Range(0, 3).Min(_ => Allocated(steps));
            long extra = Least(200) - Least(100);
            Assert.True(extra < 1000, $"{entry.Name}: {extra} bytes more for 100 more steps");
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Staged_device_buffers_give_the_same_images_as_bound_host_buffers(bool int64Timestep,
        bool scalarTimestep)
    {
        // Class-conditional and guided, so that labels, the doubled batch and each timestep layout pass through the
        // copies.
        var spec = Fixtures.Spec() with
        {
            ClassMeans = [[0.5f], [-0.5f], [0f]], Int64Timestep = int64Timestep, ScalarTimestep = scalarTimestep,
        };
        using var direct = Fixtures.Load(spec);
        using var staged = Fixtures.Load(spec, new Onnx.ModelOptions
        {
            Session = new Onnx.SessionSettings { StageThroughDeviceBuffers = true }
        });
        using (var d = new Samplers.Denoiser(direct, 2, ClassConditions.For(direct, [0], 3))) Assert.False(d.StagedBuffers);
        using (var d = new Samplers.Denoiser(staged, 2, ClassConditions.For(staged, [0], 3))) Assert.True(d.StagedBuffers);
        foreach (var sampler in new[] { "ddim", "dpm++2m", "heun", "ddpm" })
        {
            var request = new GenerationRequest
            {
                Sampler = sampler, Steps = 8, Count = 6, BatchSize = 3, Seed = 3, Guidance = 3,
                ClassLabels = [0, 1, 1, 0, 1, 0],
            };
            var expected = new ImageGenerator(direct).Generate(request).Images;
            Assert.Equal(expected, new ImageGenerator(staged).Generate(request).Images);
            // guidance and labels reach the network
            Assert.NotEqual(expected, new ImageGenerator(staged).Generate(request with { Guidance = 1 }).Images);
        }
    }

    [Fact]
    public void Progress_reaches_every_image_and_cancellation_stops_the_loop()
    {
        using var model = Fixtures.Gaussian();
        var reports = new List<GenerationProgress>();
        var progress = new SynchronousProgress<GenerationProgress>(reports.Add);
        new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "ddim", Steps = 5, Count = 6, BatchSize = 4,
        }, progress);
        Assert.Equal(6, reports[^1].ImagesDone);
        Assert.Contains(reports, p => p.Step == 3 && p.ImagesDone == 4);

        using var cts = new CancellationTokenSource();
        var cancelling = new SynchronousProgress<GenerationProgress>(p => { if (p.Step == 2) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new ImageGenerator(model).Generate(new GenerationRequest
            {
                Sampler = "ddim", Steps = 50, Count = 4, BatchSize = 4,
            }, cancelling, cts.Token));
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
