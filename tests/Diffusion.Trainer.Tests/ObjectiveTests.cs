using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Evaluation.Likelihood;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Schedules;
using Diffusion.Trainer.Data;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Training;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Tests;

[Collection(DefaultGenerator.Name)]
public class ObjectiveTests
{
    [Fact]
    public void Q_sample_uses_the_runtime_schedule()
    {
        var schedule = NoiseSchedule.Create(BetaScheduleKind.SquaredCosCapV2, 1000, 0, 0);
        using var objective = new DiffusionObjective(schedule, PredictionType.Epsilon, LossWeighting.Simple, 5, 0, 0,
            CPU);
        using var scope = NewDisposeScope();
        var x0 = tensor(new[] { 0.5f, -0.25f, 1f }, [3, 1, 1, 1]);
        var noise = tensor(new[] { 1f, 2f, -1f }, [3, 1, 1, 1]);
        var xt = objective.QSample(x0, tensor(new[] { 0L, 500L, 999L }), noise).data<float>().ToArray();
        long[] t = [0, 500, 999];
        float[] x = [0.5f, -0.25f, 1f], e = [1f, 2f, -1f];
        for (int i = 0; i < 3; i++)
        {
            double ab = schedule.AlphasCumprod[(int)t[i]];
            Assert.Equal(Math.Sqrt(ab) * x[i] + Math.Sqrt(1 - ab) * e[i], xt[i], 5);
        }
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.VPrediction)]
    [InlineData(PredictionType.Sample)]
    public void The_vlb_weighting_makes_the_loss_the_bounds_kl_per_dimension(PredictionType prediction)
    {
        // KL(q(x_{t−1} | x_t, x₀) ‖ p_θ) = ½ c₁² (x₀ − x̂₀)²/β̃_t + a constant, per value; uniform t draws it T/T times
        var schedule = NoiseSchedule.Create(BetaScheduleKind.Linear, 1000, 1e-4, 0.02);
        using var objective = new DiffusionObjective(schedule, prediction, LossWeighting.Vlb, 5, 0, 0, CPU);
        var ab = schedule.AlphasCumprod;
        var beta = schedule.Betas;
        foreach (int t in new[] { 1, 10, 300, 999 })
        {
            double a = Math.Sqrt(ab[t]), s = Math.Sqrt(1 - ab[t]);
            double x0 = 0.3, eps = -1.2, xt = a * x0 + s * eps;
            double hat = 0.1; // the network's x̂₀, and the prediction it is in the network's own terms
            double epsHat = (xt - a * hat) / s, vHat = a * epsHat - s * hat, v = a * eps - s * x0;
            double targetError = prediction switch
            {
                PredictionType.Epsilon => epsHat - eps, PredictionType.VPrediction => vHat - v, _ => hat - x0,
            };
            double c1 = Math.Sqrt(ab[t - 1]) * beta[t] / (1 - ab[t]);
            double posterior = beta[t] * (1 - ab[t - 1]) / (1 - ab[t]);
            double kl = 0.5 * c1 * c1 * (x0 - hat) * (x0 - hat) / posterior;
            Assert.Equal(1000 * kl, objective.Weight(t) * targetError * targetError, 1000 * kl * 1e-5);
        }
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.VPrediction)]
    [InlineData(PredictionType.Sample)]
    public void The_learned_variance_bound_term_is_the_runtimes_per_value(PredictionType prediction)
    {
        // The hybrid loss's L_t against the variational bound's own terms (Diffusion.Evaluation, in double precision,
        // its Gaussian CDF from MathNet): KL for t ≥ 1, the discretized decoder at t = 0, Σ from v.
        var schedule = NoiseSchedule.Create(BetaScheduleKind.Linear, 1000, 1e-4, 0.02);
        using var objective = new DiffusionObjective(schedule, prediction, LossWeighting.Simple, 5, 0, 0, CPU);
        var kernels = new ReverseKernels(schedule);
        using var scope = NewDisposeScope();
        using var g = new Generator(11);
        long[] steps = [0, 1, 250, 999, 0];
        int b = steps.Length, d = 2 * 4 * 4;
        // 8-bit data, the outermost bins included
        var x0 = (randint(0, 256, [b, 2, 4, 4], generator: g).to_type(ScalarType.Float32) / 127.5f - 1);
        x0[0, 0, 0, 0] = tensor(-1f);
        x0[4, 1, 3, 3] = tensor(1f);
        var t = tensor(steps);
        var xt = objective.QSample(x0, t, randn([b, 2, 4, 4], generator: g));
        // x̂₀ within a few σ of x₀ (at t = 0 the decoder's σ is about 0.01, and a mass under 1e-12 is floored there, as
        // in improved-diffusion), in the network's own terms
        var x0Hat = x0 + randn([b, 2, 4, 4], generator: g) * 0.01f;
        var alpha = objective.SqrtAlphaBar(t).reshape(b, 1, 1, 1);
        var sigma = (1 - alpha.square()).sqrt();
        var output = prediction switch
        {
            PredictionType.Epsilon => (xt - alpha * x0Hat) / sigma, PredictionType.Sample => x0Hat,
            _ => (alpha * xt - x0Hat) / sigma,
        };
        var v = rand([b, 2, 4, 4], generator: g) * 3 - 1.5f;
        var bits = objective.BoundTerm(x0, xt, t, output, v).data<float>().ToArray();
        var (x, xs, o, vs) = (x0.data<float>().ToArray(), xt.data<float>().ToArray(), output.data<float>().ToArray(),
            v.data<float>().ToArray());
        for (int i = 0; i < b; i++)
        {
            int step = (int)steps[i];
            double a = Math.Sqrt(schedule.AlphasCumprod[step]), s = Math.Sqrt(1 - schedule.AlphasCumprod[step]);
            double nats = 0;
            for (int k = i * d; k < (i + 1) * d; k++)
            {
                double hat = prediction switch
                {
                    PredictionType.Epsilon => (xs[k] - s * o[k]) / a, PredictionType.Sample => o[k],
                    _ => a * xs[k] - s * o[k],
                };
                double lv = kernels.LearnedLogVariance(step, vs[k]), c1 = kernels.MeanOnSample(step);
                nats += step == 0 ? -GaussianTerms.DiscretizedLogLikelihood(x[k], hat, lv)
                    : GaussianTerms.NormalKl(c1 * x[k], kernels.LogPosteriorVariance(step), c1 * hat, lv);
            }
            double expected = nats / d / Math.Log(2);
            Assert.True(Math.Abs(bits[i] - expected) <= 1e-4 * Math.Max(1, Math.Abs(expected)),
                $"t = {step}: {bits[i]} bits/dim, the runtime's {expected}");
        }
    }

    [Theory]
    [InlineData("epsilon", LossWeighting.Simple)]
    [InlineData("v_prediction", LossWeighting.MinSnr)]
    [InlineData("sample", LossWeighting.Snr)]
    [InlineData("v_prediction", LossWeighting.Vlb)]
    public void Every_prediction_type_and_weighting_trains(string prediction, LossWeighting weighting)
    {
        var data = Datasets.Open("fashion-mnist-test").Take(64);
        var config = new TrainConfig
        {
            Steps = 4, Batch = 8, SampleEvery = 0, CheckpointEvery = 100, Weighting = weighting,
            Diffusion = new DiffusionConfig { PredictionType = prediction, BetaSchedule = "cosine" },
            Net = new UNetConfig { BaseChannels = 8, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [] },
        };
        using var run = TrainingRun.Start(config, TestFolders.Reserve("objective"), data);
        run.Run();
        Assert.All(run.Losses, l => Assert.True(double.IsFinite(l.Loss) && l.Loss > 0));
        using var model = DiffusionModel.Load(run.ExportOnnx(), "exported");
        Assert.Equal(prediction, model.Config.PredictionType);
        Assert.Equal("cosine", model.Config.BetaSchedule);
    }

    [Fact]
    public void A_learned_variance_trains_with_the_hybrid_loss_and_exports_as_learned_range()
    {
        var data = Datasets.Open("fashion-mnist-test").Take(64);
        var config = new TrainConfig
        {
            Steps = 6, Batch = 8, SampleEvery = 0, CheckpointEvery = 100, LearningRate = 1e-3, WarmupSteps = 0,
            Diffusion = new DiffusionConfig { PredictionType = "v_prediction", BetaSchedule = "cosine" },
            Net = new UNetConfig
            {
                BaseChannels = 8, ChannelMults = [1, 2], ResBlocks = 1, AttentionResolutions = [], LearnSigma = true,
            },
        };
        using var run = TrainingRun.Start(config, TestFolders.Reserve("learn-sigma"), data);
        run.Run();
        Assert.All(run.Losses, l => Assert.True(double.IsFinite(l.Loss) && l.Loss > 0));
        using var model = DiffusionModel.Load(run.ExportOnnx(), "exported");
        Assert.Equal(("learned_range", 2), (model.Config.VarianceType, model.OutputChannels));
        // the runtime samples and bounds with its v
        var images = new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "ddpm", Steps = 5, Count = 2, BatchSize = 2,
        }).Images;
        Assert.All(images, x => Assert.True(float.IsFinite(x)));
        var test = Datasets.Open("fashion-mnist-test").Take(4);
        var pixels = test.Pixels.Take(4 * test.ImageSize).Select(Pixels.ToModel).ToArray();
        var bound = VariationalBound.Evaluate(model, new LikelihoodData(pixels, 4, model.Shape, Discrete: true, "test"),
            new BoundOptions { SampledTimesteps = 5, BatchSize = 24 });
        Assert.True(double.IsFinite(bound.Total.BitsPerDim) && bound.Total.BitsPerDim > 0);
        // a learned_range config for a network without v is refused at the start, naming the option
        Assert.Contains("--learn-sigma", Assert.Throws<DiffusionArgumentException>(() => (config with
        {
            Diffusion = config.Diffusion with { VarianceType = "learned_range" },
        }).Validate()).Message);
    }

    [Fact]
    public void Cuda_is_used_where_torchsharp_has_it_and_is_one_clear_error_where_not()
    {
        Assert.Contains("expected cpu, cuda or cuda:N",
            Assert.Throws<DiffusionArgumentException>(() => TorchSetup.ParseDevice("tpu")).Message);
        if (cuda.is_available())
        {
            Assert.Equal(TorchSharp.DeviceType.CUDA, TorchSetup.ParseDevice("cuda").type);
            return;
        }
        var config = new TrainConfig { Device = "cuda", Steps = 1, SampleEvery = 0 };
        var e = Assert.Throws<DiffusionArgumentException>(() =>
            TrainingRun.Start(config, TestFolders.Reserve("cuda"), Datasets.Open("fashion-mnist-test").Take(8)));
        Assert.Contains("no usable CUDA", e.Message);
        Assert.Contains("-p:TorchBackend=cuda", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_folder_of_pngs_in_class_subfolders_is_a_labelled_data_set()
    {
        var root = TestFolders.Create("pngs");
        foreach (var (cls, value) in new[] { ("cats", (byte)10), ("dogs", (byte)200) })
        {
            Directory.CreateDirectory(Path.Combine(root, cls));
            for (int i = 0; i < 3; i++)
                ImageFile.Save(Path.Combine(root, cls, $"{i}.png"),
                    new Image8(4, 4, 3, Enumerable.Repeat(value, 48).ToArray()));
        }
        var data = Datasets.Open(root);
        Assert.Equal((6, 3, 4, 4), (data.Count, data.Channels, data.Height, data.Width));
        Assert.Equal(["cats", "dogs"], data.ClassNames);
        Assert.Equal([0, 0, 0, 1, 1, 1], data.Labels!);
        using var scope = NewDisposeScope();
        var (images, labels) = data.Batch([4], [false]);
        Assert.Equal(200 / 127.5f - 1, images.data<float>()[0], 5);
        Assert.Equal([1L], labels!.data<long>().ToArray());
        ImageFile.Save(Path.Combine(root, "dogs", "odd.png"), new Image8(5, 4, 3, new byte[60]));
        Assert.Contains("odd.png", Assert.Throws<DiffusionArgumentException>(() => Datasets.Open(root)).Message);
    }

    [Fact]
    public void A_folder_of_any_formats_and_sizes_is_resized_and_counted_per_class()
    {
        var root = TestFolders.Create("mixed");
        Directory.CreateDirectory(Path.Combine(root, "cats"));
        Directory.CreateDirectory(Path.Combine(root, "dogs"));
        var photo = new Image8(40, 30, 3, Enumerable.Range(0, 3600).Select(i => (byte)(i % 251)).ToArray());
        ImageFile.Save(Path.Combine(root, "cats", "a.jpg"), photo);
        ImageFile.Save(Path.Combine(root, "cats", "b.webp"), photo);
        ImageFile.Save(Path.Combine(root, "dogs", "c.png"), new Image8(12, 12, 1, new byte[144]));
        File.WriteAllText(Path.Combine(root, "dogs", "notes.txt"), "not an image");
        var e = Assert.Throws<DiffusionArgumentException>(() => Datasets.Open(root));
        Assert.Equal(nameof(TrainConfig.ImageSize), e.Parameter);
        Assert.Contains("a.jpg", e.Message);
        Assert.Contains("c.png", e.Message);
        var data = Datasets.Open(root, size: 16);
        Assert.Equal((3, 3, 16, 16), (data.Count, data.Channels, data.Height, data.Width));
        Assert.Equal([0, 0, 1], data.Labels!);
        Assert.Equal($"read 3 images of 16×16×3 from '{root}' (cats 2, dogs 1); skipped 1 file(s) that are not " +
            $"images: '{Path.Combine("dogs", "notes.txt")}'", data.Summary);
        // the gray PNG stays gray: equal channels, all black
        Assert.All(data.Pixels.AsSpan(2 * 768, 768).ToArray(), v => Assert.Equal(0, v));
        // a folder of gray files has one channel
        Directory.Delete(Path.Combine(root, "cats"), recursive: true);
        Assert.Equal(1, Datasets.Open(root, size: 16).Channels);
        Assert.Contains("only image folders are resized",
            Assert.Throws<DiffusionArgumentException>(() => Datasets.Open("fashion-mnist-test", size: 16)).Message);
    }

    [Fact]
    public void A_linked_class_folder_is_followed_and_a_link_loop_or_second_link_is_refused_by_name()
    {
        var root = TestFolders.Create("linked");
        var elsewhere = TestFolders.Create("linked-elsewhere");
        Directory.CreateDirectory(Path.Combine(root, "cats"));
        ImageFile.Save(Path.Combine(root, "cats", "a.png"), new Image8(8, 8, 1, new byte[64]));
        ImageFile.Save(Path.Combine(elsewhere, "b.png"), new Image8(8, 8, 1, new byte[64]));
        Directory.CreateSymbolicLink(Path.Combine(root, "dogs"), elsewhere);
        var data = Datasets.Open(root);
        Assert.Equal(["cats", "dogs"], data.ClassNames);
        Assert.Equal(2, data.Count);

        var loop = Path.Combine(root, "cats", "self");
        Directory.CreateSymbolicLink(loop, ".");
        var e = Assert.Throws<DiffusionException>(() => Datasets.Open(root));
        Assert.Equal($"Data: '{loop}' is the folder '{Path.Combine(root, "cats")}' again (through a link); its images "
            + "would be read twice. Remove the link.", e.Message);
        Directory.Delete(loop);
        var twice = Path.Combine(root, "more-dogs");
        Directory.CreateSymbolicLink(twice, elsewhere);
        Assert.Contains($"'{twice}' is the folder '{Path.Combine(root, "dogs")}' again",
            Assert.Throws<DiffusionException>(() => Datasets.Open(root)).Message);
    }

    [Fact]
    public void Horizontal_flip_mirrors_each_row()
    {
        var pixels = Enumerable.Range(0, 6).Select(i => (byte)(i * 50)).ToArray(); // one 2×3 gray image
        var data = new ImageDataset(pixels, null, 1, 1, 2, 3, [], "inline");
        using var scope = NewDisposeScope();
        var flipped = data.Batch([0], [true]).Images.data<float>().ToArray().Select(v =>
            (int)MathF.Round((v + 1) * 127.5f)).ToArray();
        Assert.Equal([100, 50, 0, 250, 200, 150], flipped);
    }
}
