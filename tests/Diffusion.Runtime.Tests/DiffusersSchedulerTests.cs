using System.Text.Json.Nodes;
using Diffusion.Runtime.Diffusers;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// diffusers' own schedulers (0.31, run by interop/diffusers/make_fixtures.py) on the closed-form Gaussian denoiser
/// against the runtime's reproduction of them: the same grid, and within 1e-3 the same images for the same x_T.
/// </summary>
public class DiffusersSchedulerTests
{
    private static readonly JsonObject Data = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "Diffusers", "gaussian.json")))!;

    public static TheoryData<string> Cases() => new(((JsonArray)Data["cases"]!).Select(c => (string)c!["name"]!));

    private static JsonObject Case(string name) =>
        (JsonObject)((JsonArray)Data["cases"]!).First(c => (string)c!["name"]! == name)!;

    private static float[] Floats(JsonNode? node) => ((JsonArray)node!).Select(v => (float)(double)v!).ToArray();

    /// <summary>
    /// The Gaussian model with the case's betas, data std and prediction type, and its diffusers scheduler.
    /// </summary>
    internal static (DiffusionModel Model, DiffusersScheduler Scheduler) Load(JsonObject c)
    {
        var config = DiffusionConfig.Parse((string)c["config"]!, (string)c["name"]!);
        var model = Fixtures.Load(Fixtures.Spec() with
        {
            Std = [(float)(double)c["std"]!], Config = config with { Scheduler = null }
        });
        return (model, config.Scheduler!);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_runtime_walks_diffusers_grid_and_reproduces_its_images(string name)
    {
        var c = Case(name);
        var (model, scheduler) = Load(c);
        using var _ = model;
        var sampler = new DiffusersSampler(scheduler);
        int steps = (int)c["steps"]!;
        if (scheduler.Unsupported is not null)
        {
            var refused = Assert.Throws<DiffusionArgumentException>(() => sampler.Validate());
            Assert.Contains(scheduler.ClassName, refused.Message);
            return;
        }
        var grid = sampler.OwnGrid(model.Schedule, steps)!;
        // diffusers' Heun lists its second-evaluation points twice; compare the distinct points. PNDM's list also holds
        // its pseudo Runge–Kutta evaluations between grid points; its grid is recorded apart ("grid_timesteps").
        var timesteps = c["grid_timesteps"] is JsonArray own ? Floats(own) : Distinct(Floats(c["timesteps"]));
        Assert.Equal(timesteps.Length, grid.Length - 1);
        for (int i = 0; i < timesteps.Length; i++) Assert.Equal(timesteps[i], grid[i].Timestep, 1e-3);
        if (c["sigmas"] is JsonArray)
        {
            var sigmas = Distinct(Floats(c["sigmas"]));
            for (int i = 0; i < grid.Length; i++) Assert.Equal(sigmas[i], grid[i].Sigma, sigmas[i] * 1e-4 + 1e-6);
        }
        if (c["sample_std"] is JsonValue sampleStd)
        {
            // Stochastic: the same distribution from the runtime's own noise (4096 images of 64 independent pixels on
            // both sides: standard errors ≈ 0.0004 in the mean, 0.15 % in the std).
            var images = new ImageGenerator(model).Generate(new GenerationRequest
            {
                SamplerInstance = sampler, Steps = steps, Count = 4096, BatchSize = 512, Seed = 5,
            }).Images;
            var (mean, std) = Fixtures.Moments(images);
            double expectedMean = (double)c["sample_mean"]!, expectedStd = (double)sampleStd;
            Assert.True(Math.Abs(mean - expectedMean) <= 0.003 && Math.Abs(std - expectedStd) <= 0.01 * expectedStd,
                $"{name}: mean {mean:F4}, std {std:F4}; diffusers {expectedMean:F4}, {expectedStd:F4}");
        }
        if (!(bool)c["deterministic"]!) return;
        var xT = Floats(Data["x_T"]);
        var ours = new ImageGenerator(model).Generate(new GenerationRequest
        {
            SamplerInstance = sampler, Steps = steps, Count = 2, BatchSize = 2, InitialNoise = xT,
        }).Images;
        var theirs = Floats(c["output"]);
        double worst = ours.Zip(theirs, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= 1e-3, $"{name}: largest difference from diffusers {worst:E2}");
    }

    [Fact]
    public void Every_recorded_config_survives_being_written_back_with_its_scheduler()
    {
        // What a model's metadata would carry: a config written by ToJson must read back as the same scheduler,
        // refusals (unmodelled keys such as use_lu_lambdas) included.
        foreach (var c in ((JsonArray)Data["cases"]!).Select(n => (JsonObject)n!))
        {
            var name = (string)c["name"]!;
            var config = DiffusionConfig.Parse((string)c["config"]!, name);
            var again = DiffusionConfig.Parse(config.ToJson(), name + " written back");
            Assert.NotNull(again.Scheduler);
            Assert.Equal(config.Scheduler! with { SourceKeys = null }, again.Scheduler! with { SourceKeys = null });
            Assert.Equal(config with { Scheduler = null, SampleSize = null, ClassNames = null }, again with
            {
                Scheduler = null, SampleSize = null, ClassNames = null,
            });
        }
        var lu = DiffusionConfig.Parse("""{"_class_name": "DPMSolverMultistepScheduler", "use_lu_lambdas": true, "lambda_min_clipped": -5.1}""", "lu");
        var luAgain = DiffusionConfig.Parse(lu.ToJson(), "lu written back");
        Assert.Contains("λ/exponential/beta σ grids", luAgain.Scheduler!.Unsupported);
        Assert.Equal(-5.1, luAgain.Scheduler.LambdaMinClipped);
        Assert.Equal("DPMSolverMultistepScheduler", luAgain.Scheduler.ClassName);
    }

    /// <summary>
    /// PNDM evaluates the network between grid levels; inpainting blends after each of its combinations (as diffusers'
    /// pipeline after each step call), so the kept pixels end exactly as given and the others are sampled (diffusers'
    /// StableDiffusionInpaintPipeline parity: DiffusersPipelineTests).
    /// </summary>
    [Theory]
    [InlineData("PNDMScheduler-skip_prk_steps=True-20")]
    [InlineData("PNDMScheduler-leading-20")]
    public void Pndm_inpainting_keeps_the_known_pixels(string name)
    {
        var (model, scheduler) = Load(Case(name));
        using var _ = model;
        int d = model.ImageSize;
        var known = Enumerable.Range(0, d).Select(i => MathF.Sin(i * 0.3f) * 0.8f).ToArray();
        var mask = Enumerable.Range(0, d).Select(i => i % 3 == 0 ? 0f : 1f).ToArray();
        var result = new ImageGenerator(model).Generate(new GenerationRequest
        {
            SamplerInstance = new DiffusersSampler(scheduler), Steps = 10, Count = 1, KnownImages = known, Mask = mask,
        });
        for (int i = 0; i < d; i++)
            if (mask[i] == 1) Assert.Equal(known[i], result.Images[i]);
        Assert.Contains(Enumerable.Range(0, d), i => mask[i] == 0 && Math.Abs(result.Images[i] - known[i]) > 1e-3);
    }

    [Theory]
    [InlineData("PNDMScheduler-skip_prk_steps=True-20", new[] { 2, 5, 10, 20 }, new[] { 1, 4, 9, 19 })]
    [InlineData("PNDMScheduler-leading-20", new[] { 4, 12, 13, 20, 50 }, new[] { 2, 3, 4, 11, 41 })]
    public void Pndm_budgets_count_the_evaluations_it_makes(string name, int[] budgets, int[] expectedSteps)
    {
        // The bench gives each sampler a budget of network evaluations: PNDM spends one more than its steps (PLMS) or
        // 4 per pseudo Runge–Kutta step, so its steps are fewer — counted here on the network it actually calls.
        var (model, scheduler) = Load(Case(name));
        using var _ = model;
        var sampler = new DiffusersSampler(scheduler);
        for (int i = 0; i < budgets.Length; i++)
        {
            int steps = sampler.StepsForBudget(budgets[i]);
            Assert.Equal(expectedSteps[i], steps);
            var made = new ImageGenerator(model).Generate(new GenerationRequest
            {
                SamplerInstance = sampler, Steps = steps, Count = 1,
            }).EvaluationsPerImage;
            Assert.Equal(PndmWalk.Evaluations(scheduler, steps), made);
            Assert.InRange(made, budgets[i] - (scheduler.SkipPrkSteps ? 1 : 4), budgets[i]);
        }
    }

    private static float[] Distinct(float[] values) => values.Where((v, i) => i == 0 || v != values[i - 1]).ToArray();
}

/// <summary>
/// Small UNet2DModels built, exported (Optimum's layout: int64 timestep [B], class_labels, out_sample) and sampled by
/// diffusers 0.31 itself: the folder loads as it is and gives diffusers' images for the same x_T.
/// </summary>
public class DiffusersExportTests
{
    private static string Folder(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "Diffusers", name);

    private static JsonObject Reference(string name) =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Folder(name), "reference.json")))!;

    private static float[] Floats(JsonNode? node) => ((JsonArray)node!).Select(v => (float)(double)v!).ToArray();

    /// <summary>
    /// The export with <paramref name="schedulerConfig"/> in place of its scheduler config (classes from
    /// unet/config.json).
    /// </summary>
    private static DiffusionModel Load(string name, string schedulerConfig)
    {
        using var plain = DiffusionModel.Load(Folder(name));
        var config = DiffusionConfig.Parse(schedulerConfig, "scheduler config") with
        {
            NumClasses = plain.NumClasses, NullClass = plain.Config.NullClass,
        };
        return DiffusionModel.Load(Folder(name), new ModelOptions
        {
            Config = config, ConfigSource = "scheduler config",
        });
    }

    private static float[] Generate(DiffusionModel model, JsonObject reference, float[] xT, int steps,
        Samplers.ISampler? sampler)
    {
        var labels = reference["labels"] is JsonArray l ? l.Select(v => (int)v!).ToArray() : [];
        return new ImageGenerator(model).Generate(new GenerationRequest
        {
            SamplerInstance = sampler, Steps = steps, Count = 2, BatchSize = 2, InitialNoise = xT, ClassLabels = labels,
        }).Images;
    }

    private static void Close(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= 1e-3, $"{what}: largest difference from diffusers {worst:E2}");
    }

    [Theory]
    [InlineData("unet-eps", "DPMSolverMultistepScheduler", 1, 0)]
    [InlineData("unet-class-v", "DDIMScheduler", 3, 4)]
    public void An_optimum_folder_loads_as_it_is_and_its_scheduler_is_the_default(string name, string scheduler,
        int channels, int classes)
    {
        using var model = DiffusionModel.Load(Folder(name));
        Assert.Equal((channels, 8, 8, classes), (model.Channels, model.Height, model.Width, model.NumClasses));
        Assert.Equal(scheduler, new ImageGenerator(model).ResolveSampler(new GenerationRequest()).Name);
        Assert.Equal("ddim", new ImageGenerator(model).ResolveSampler(new GenerationRequest { Sampler = "ddim" }).Name);
    }

    [Fact]
    public void A_class_conditional_diffusers_unet_has_no_null_label_so_it_needs_a_class_and_no_guidance()
    {
        using var model = DiffusionModel.Load(Folder("unet-class-v"));
        Assert.False(model.HasNullClass);
        var generator = new ImageGenerator(model);
        var unconditional = Assert.Throws<DiffusionArgumentException>(() =>
            generator.Generate(new GenerationRequest { Steps = 2, Count = 1 }));
        Assert.Equal("ClassLabels", unconditional.Parameter);
        Assert.Contains("no null label", unconditional.Message);
        var guided = Assert.Throws<DiffusionArgumentException>(() =>
            generator.Generate(new GenerationRequest { Steps = 2, Count = 1, ClassLabels = [1], Guidance = 3 }));
        Assert.Equal("Guidance", guided.Parameter);
        Assert.Equal(3 * 8 * 8,
            generator.Generate(new GenerationRequest { Steps = 2, Count = 1, ClassLabels = [3] }).Images.Length);
        // The runtime's own class-conditional models keep label num_classes as their trained null label.
        using var ours = DiffusionModel.Load(Fixtures.GaussianModelPath);
        Assert.True(ours.HasNullClass);
        Assert.True(DiffusionConfig.Parse(ours.Config.ToJson(), "round trip").NullClass);
        Assert.False(DiffusionConfig.Parse((ours.Config with { NullClass = false }).ToJson(), "round trip").NullClass);
    }

    [Theory]
    [InlineData("unet-eps")]
    [InlineData("unet-class-v")]
    public void Each_scheduler_reproduces_diffusers_pipeline_on_the_export(string name)
    {
        var reference = Reference(name);
        var xT = Floats(reference["x_T"]);
        foreach (var run in ((JsonArray)reference["runs"]!).Cast<JsonObject>())
        {
            // As a diffusers user swaps pipe.scheduler: the folder with another scheduler config (the first run is
            // the folder's own); the config's scheduler is the default sampler.
            using var model = Load(name, (string)run["config"]!);
            Close(Floats(run["output"]), Generate(model, reference, xT, (int)run["steps"]!, null),
                $"{name} {run["scheduler"]}");
        }
    }

    [Fact]
    public void The_runtime_matches_diffusers_DDIMPipeline_images()
    {
        var reference = Reference("unet-eps");
        var pipeline = (JsonObject)reference["ddim_pipeline"]!;
        var ddimConfig = (string)((JsonArray)reference["runs"]!).First(r =>
            (string)r!["scheduler"]! == "DDIMScheduler")!["config"]!;
        using var model = Load("unet-eps", ddimConfig!);
        var x = Generate(model, reference, Floats(pipeline["x_T"]), (int)pipeline["steps"]!, null);
        Close(Floats(pipeline["images"]), x.Select(v => Math.Clamp(v / 2 + 0.5f, 0f, 1f)).ToArray(), "DDIMPipeline");
    }
}

/// <summary>
/// The runtime's own samplers on their own grids (multistep solvers on the multistep grid rule) are never further from
/// the data's std than diffusers' scheduler of the same method, on Stable Diffusion's schedule (data std 0.3) and the
/// DDPM linear one (0.5), at 10 and 20 steps and every spacing — except where diffusers' number owes to leaving its
/// method (listed below). A diffusers config's default sampler walks diffusers' way and equals it there (tested above).
/// </summary>
public class OwnDefaultsVersusDiffusersTests
{
    private static readonly JsonObject Data = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "Diffusers", "gaussian.json")))!;

    public static TheoryData<string, string> Pairs() => new()
    {
        { "DDIMScheduler", "ddim" }, { "EulerDiscreteScheduler", "euler" }, { "HeunDiscreteScheduler", "heun" },
        { "DPMSolverMultistepScheduler", "dpm++2m" }, { "UniPCMultistepScheduler", "unipc" },
    };

    /// <summary>
    /// diffusers' DDIM on "linspace" grids steps to t − ⌊T/n⌋ and then evaluates at the next grid point as if there
    /// (10 steps: x sits 11 timesteps noisier than the network is told all the way down), so it ends with noise the
    /// network never removes; that noise offsets DDIM's under-dispersion (0.282 vs the method's 0.201 on SD's schedule,
    /// 0.419 vs 0.362 on the linear one, at 10 steps; the method's number is diffusers' own Euler on the same grid).
    /// diffusers' Heun starts from σ_max·z instead of the prior's √(1 + σ_max²)·z, 0.23 % smaller, which shrinks its
    /// over-dispersion by as much (0.3355 vs 0.3363).
    /// </summary>
    private static readonly HashSet<(string, string, int)> NotTheMethod =
    [
        ("ddim", "linspace", 10), ("ddim", "linspace", 20), ("ddim", "linear-linspace", 10),
            ("ddim", "linear-linspace", 20),
        ("heun", "linspace", 10), ("heun", "linspace", 20),
    ];

    [Theory]
    [MemberData(nameof(Pairs))]
    public void Our_error_in_std_is_at_most_diffusers(string scheduler, string sampler)
    {
        var report = new List<string>();
        // Stable Diffusion's scaled_linear (data std 0.3), the DDPM linear (0.5)
        foreach (var schedule in new[] { "", "linear-" })
        foreach (var spacing in new[] { "leading", "linspace", "trailing" })
        foreach (var steps in new[] { 10, 20 })
        {
            var c = (JsonObject)((JsonArray)Data["cases"]!).First(x =>
                (string)x!["name"]! == $"{scheduler}-{schedule}{spacing}-{steps}")!;
            double std = (double)c["std"]!;
            var (model, _) = DiffusersSchedulerTests.Load(c);
            using var _m = model;
            // The output is a·x_T + b per pixel: a is the std of the samples for x_T ~ N(0, I).
            float Run(float x) => new ImageGenerator(model).Generate(new GenerationRequest
            {
                Sampler = sampler, Steps = steps, Count = 1, BatchSize = 1,
                Spacing = Schedules.TimestepSpacings.Parse(spacing),
                InitialNoise = Enumerable.Repeat(x, model.ImageSize).ToArray(),
            }).Images[0];
            double ours = Run(1) - Run(0), theirs = (double)c["a"]!;
            double ourError = Math.Abs(ours - std), theirError = Math.Abs(theirs - std);
            if (NotTheMethod.Contains((sampler, schedule + spacing, steps)))
            {
                // Ours is then diffusers' own run of the method (DDIM ≡ Euler in σ space) from the prior's x_T.
                var method = (JsonObject)((JsonArray)Data["cases"]!).First(x => (string)x!["name"]! ==
                    (sampler == "ddim" ? $"EulerDiscreteScheduler-{schedule}{spacing}-{steps}"
                        : $"{scheduler}-{schedule}{spacing}-{steps}"))!;
                double sigmaMax = (double)((JsonArray)method["sigmas"]!)[0]!,
                    expected = (double)method["a"]! * Math.Sqrt(1 + sigmaMax * sigmaMax) / sigmaMax;
                if (Math.Abs(ours - expected) > 1e-3 * expected)
                    report.Add($"{schedule}{spacing}/{steps}: std {ours:F4}, but diffusers' own run of the method " +
                        $"from the prior's x_T gives {expected:F4}");
            }
            else if (ourError > theirError + 1e-4)
                report.Add($"{schedule}{spacing}/{steps}: std {ours:F4} vs diffusers' {theirs:F4} (data {std})");
        }
        Assert.True(report.Count == 0,
            $"{sampler} is further from the data's std than {scheduler}: {string.Join("; ", report)}");
    }
}
