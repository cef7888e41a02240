using Diffusion.ReferenceModels;
using Diffusion.OnnxGraph;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Microsoft.ML.OnnxRuntime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.Runtime.Tests;

public class BadInputTests
{
    [Theory]
    [InlineData("""{"clip_sample": true, "clip_sample_range": -1}""", "clip_sample_range must lie in (0, 1e6]")]
    [InlineData("""{"steps_offset": -100000}""", "steps_offset must lie in 0…999")]
    [InlineData("""{"steps_offset": 2147483647}""", "steps_offset must lie in 0…999")]
    [InlineData("""{"thresholding": true, "sample_max_value": 1e300}""", "sample_max_value must lie in (0, 1e6]")]
    [InlineData("""{"thresholding": true, "sample_max_value": 0}""", "sample_max_value must lie in (0, 1e6]")]
    public void Hostile_config_values_are_refused_where_they_are_read(string json, string expected)
    {
        var e = Assert.Throws<DiffusionException>(() => DiffusionConfig.Parse(json, "hostile.json"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("hostile.json", e.Message);
    }

    [Fact]
    public void Guidance_and_tolerances_must_be_finite_and_bounded()
    {
        using var model = Fixtures.Gaussian();
        var generator = new ImageGenerator(model);
        foreach (var guidance in new[] { 1e6f, 1e30f, float.PositiveInfinity, float.NaN, -1f })
            Assert.Equal(nameof(GenerationRequest.Guidance), Assert.Throws<DiffusionArgumentException>(() =>
                generator.Generate(new GenerationRequest { Guidance = guidance, Count = 1 })).Parameter);
        foreach (var tolerance in new[] { double.PositiveInfinity, 2, 0, double.NaN })
            Assert.Equal(nameof(SamplerOptions.RelativeTolerance), Assert.Throws<DiffusionArgumentException>(() =>
                generator.Generate(new GenerationRequest
                {
                    Sampler = "rk45", Count = 1, Options = new SamplerOptions { RelativeTolerance = tolerance },
                })).Parameter);
    }

    [Fact]
    public void Missing_model_file_names_the_path()
    {
        var e = Assert.Throws<DiffusionException>(() => DiffusionModel.Load("/nowhere/model.onnx"));
        Assert.Contains("/nowhere/model.onnx", e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Corrupt_and_truncated_model_files_are_rejected_clearly()
    {
        var dir = Fixtures.TempFolder();
        var good = GaussianModel.Build(Fixtures.Spec());
        var corrupt = Path.Combine(dir, "corrupt.onnx");
        File.WriteAllBytes(corrupt, [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 7919 % 251))]);
        var truncated = Path.Combine(dir, "truncated.onnx");
        File.WriteAllBytes(truncated, good[..(good.Length / 2)]);
        var empty = Path.Combine(dir, "empty.onnx");
        File.WriteAllBytes(empty, []);
        foreach (var path in new[] { corrupt, truncated, empty })
        {
            var e = Assert.Throws<DiffusionException>(() => DiffusionModel.Load(path));
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void A_model_without_the_sample_input_says_which_inputs_it_has_and_can_be_mapped()
    {
        var bytes = GaussianModel.Build(Fixtures.Spec() with { SampleInput = "x" });
        var e = Assert.Throws<DiffusionException>(() => DiffusionModel.Load(bytes, "renamed.onnx"));
        Assert.Contains("no input named 'sample'", e.Message);
        Assert.Contains("x float32 [batch,1,8,8]", e.Message);
        Assert.Contains("SampleInput", e.Message);
        using var mapped = DiffusionModel.Load(bytes, "renamed.onnx", new ModelOptions { SampleInput = "x" });
        Assert.Equal("x", mapped.SampleInput);
    }

    [Fact]
    public void A_model_without_a_timestep_input_is_rejected()
    {
        var g = new GraphBuilder("no_timestep");
        var x = g.Input("sample", DataType.Float, "batch", 1, 8, 8);
        g.Output(g.Mul(x, g.Scalar(0.5f)), "model_output", DataType.Float, "batch", 1, 8, 8);
        var bytes = new ModelBuilder(g).Metadata(DiffusionConfig.MetadataKey, new DiffusionConfig().ToJson()).ToBytes();
        var e = Assert.Throws<DiffusionException>(() => DiffusionModel.Load(bytes, "no-t.onnx"));
        Assert.Contains("no input named 'timestep'", e.Message);
    }

    [Fact]
    public void A_config_sample_size_that_contradicts_the_graph_is_rejected()
    {
        var bytes = GaussianModel.Build(Fixtures.Spec() with { WithMetadata = false });
        var config = new DiffusionConfig { SampleSize = [16, 16], InChannels = 1 };
        var e = Assert.Throws<DiffusionException>(() =>
            DiffusionModel.Load(bytes, "g.onnx", new ModelOptions { Config = config }));
        Assert.Contains("sample_size (height) = 16", e.Message);
        Assert.Contains("[batch,1,8,8]", e.Message);
    }

    [Fact]
    public void A_model_without_any_config_asks_for_one_and_a_scheduler_config_beside_it_is_used()
    {
        var dir = Fixtures.TempFolder();
        var path = Path.Combine(dir, "unet.onnx");
        File.WriteAllBytes(path, GaussianModel.Build(Fixtures.Spec() with { WithMetadata = false }));
        var e = Assert.Throws<DiffusionException>(() => DiffusionModel.Load(path));
        Assert.Contains("scheduler_config.json", e.Message);
        File.WriteAllText(Path.Combine(dir, "scheduler_config.json"),
            """{"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear", "prediction_type": "epsilon"}""");
        using var model = DiffusionModel.Load(path);
        Assert.EndsWith("scheduler_config.json", model.ConfigSource);
        Assert.Equal(8, model.Height); // from the graph's static shape
    }

    [Fact]
    public void A_broken_config_names_the_key()
    {
        var e = Assert.Throws<DiffusionException>(() => DiffusionConfig.Parse("""{"beta_schedule": "wavy"}""", "cfg.json"));
        Assert.Contains("cfg.json", e.Message);
        Assert.Contains("wavy", e.Message);
        e = Assert.Throws<DiffusionException>(() => DiffusionConfig.Parse("""{"num_train_timesteps": "many"}""", "cfg.json"));
        Assert.Contains("num_train_timesteps", e.Message);
        Assert.Throws<DiffusionException>(() => DiffusionConfig.Parse("{not json", "cfg.json"));
        Assert.Contains("class_names", Assert.Throws<DiffusionException>(() => DiffusionConfig.Parse("""{"num_classes": 1, "class_names": [3]}""", "cfg.json")).Message);
        Assert.Contains("class_names has 1 names", Assert.Throws<DiffusionException>(() => DiffusionConfig.Parse("""{"num_classes": 2, "class_names": ["a"]}""", "cfg.json")).Message);
        var roundTrip = DiffusionConfig.Parse(new DiffusionConfig
        {
            NumClasses = 2, ClassNames = ["a", "b"], SampleSize = [4, 6], InChannels = 3,
            PredictionType = "sample",
        }.ToJson(), "json");
        Assert.Equal((2, "b", 6, 3, "sample"),
            (roundTrip.NumClasses, roundTrip.ClassNames![1], roundTrip.SampleSize![1], roundTrip.InChannels,
                roundTrip.PredictionType));
    }

    [Fact]
    public void Bad_requests_are_rejected_before_sampling()
    {
        using var model = Fixtures.Gaussian();
        var generator = new ImageGenerator(model);
        var ok = new GenerationRequest { Sampler = "ddim", Steps = 10, Count = 2 };
        string Refused(GenerationRequest r) =>
            Assert.Throws<DiffusionArgumentException>(() => generator.Generate(r)).Parameter;
        Assert.Equal("Steps", Refused(ok with { Steps = 0 }));
        Assert.Equal("Steps", Refused(ok with { Steps = -3 }));
        Assert.Equal("Count", Refused(ok with { Count = 0 }));
        Assert.Equal("BatchSize", Refused(ok with { BatchSize = 0 }));
        Assert.Equal("Guidance", Refused(ok with { Guidance = float.NaN }));
        Assert.Equal("Strength", Refused(ok with { InitialImages = new float[2 * model.ImageSize], Strength = 0 }));
        Assert.Equal("Mask", Refused(ok with { KnownImages = new float[2 * model.ImageSize] }));
        Assert.Equal("Resampling", Refused(ok with { Options = new() { Resampling = 0 } }));
        var unknown = Assert.Throws<DiffusionArgumentException>(() =>
            generator.Generate(ok with { Sampler = "dpm++3m" }));
        Assert.Equal("Sampler", unknown.Parameter);
        Assert.Contains("dpm++3m", unknown.Message);
        Assert.Contains("unipc", unknown.Message);
        Assert.Contains("1000 training timesteps",
            Assert.Throws<DiffusionArgumentException>(() => generator.Generate(ok with { Steps = 5000 })).Message);
        Assert.Contains("not class-conditional",
            Assert.Throws<DiffusionArgumentException>(() => generator.Generate(ok with { Guidance = 3 })).Message);
        Assert.Equal("Eta", Refused(ok with { Options = new() { Eta = 2 } }));
        Assert.Equal("InitialNoise", Refused(ok with { InitialNoise = new float[5] }));
    }

    [Fact]
    public void Cuda_on_the_cpu_only_build_explains_how_to_get_a_gpu()
    {
        Assert.Null(CudaProvider.Library); // the test build references the CPU package
        var e = Assert.Throws<DiffusionException>(() =>
            DiffusionModel.Load(GaussianModel.Build(Fixtures.Spec()), "g.onnx",
            new ModelOptions { Session = new SessionSettings { Device = ExecutionDevice.Cuda(0) } }));
        Assert.Contains("cuda:0", e.Message);
        Assert.Contains("-p:OrtGpu=true", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal("Device", Assert.Throws<DiffusionArgumentException>(() => ExecutionDevice.Parse("tpu")).Parameter);
        Assert.Equal(ExecutionDevice.Cuda(2), ExecutionDevice.Parse("cuda:2"));
        // CUDA settings on the CPU are argument errors, not silently ignored.
        Assert.Equal("CudaGraphs",
            Assert.Throws<DiffusionArgumentException>(() => new SessionSettings
            {
                CudaGraphs = true,
            }.CreateOptions()).Parameter);
        Assert.Equal("CudaOptions",
            Assert.Throws<DiffusionArgumentException>(() => new SessionSettings
            {
                CudaOptions = new Dictionary<string, string> { ["a"] = "1" }
            }.CreateOptions()).Parameter);
    }

    [Fact]
    public void Elf_dependencies_are_read_from_the_dynamic_segment_and_damaged_files_are_one_line()
    {
        // Debian 12's libstdc++ (6.0.30), as readelf -d lists its NEEDED entries, in the file's order.
        var libstdcxx = Path.Combine("/usr/lib/x86_64-linux-gnu", "libstdc++.so.6");
        Assert.Equal(["libm.so.6", "libc.so.6", "ld-linux-x86-64.so.2", "libgcc_s.so.1"],
            ElfDependencies.Read(libstdcxx));
        Assert.Empty(ElfDependencies.Read("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")); // needs nothing

        var folder = TestFolders.Create("elf");
        var bytes = File.ReadAllBytes(libstdcxx);
        foreach (var (name, content, expected) in new (string, byte[], string)[]
        {
            ("text.so", "not an ELF file at all, but long enough for a header: 0123456789abcdef0123456789"u8.ToArray(),
                "no ELF signature"),
            ("short.so", bytes[..20], "shorter than an ELF header"),
            ("headers.so", bytes[..64], "program headers past the end of the file"),
            ("x86.so", [.. bytes[..4], 1, .. bytes[5..4096]], "ELF class 1"),
            ("half.so", bytes[..(bytes.Length / 8)], "past the end of the file"),
        })
        {
            var path = Path.Combine(folder, name);
            File.WriteAllBytes(path, content);
            var e = Assert.Throws<DiffusionException>(() => ElfDependencies.Read(path));
            Assert.Contains(path, e.Message);
            Assert.Contains(expected, e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        Assert.Contains("could not be read",
            Assert.Throws<DiffusionException>(() => ElfDependencies.Read(Path.Combine(folder, "none.so"))).Message);
    }

    [Fact]
    public void Device_copies_reach_onnx_runtime_without_allocating()
    {
        // The staged (CUDA-graph) binding copies through ORT's CopyTensors entry point with handle arrays gathered
        // once;
        // this finds that entry point and the OrtValue handles in the API build the app was compiled against.
        Assert.True(TensorCopy.CanCallDirectly,
            "NativeMethods.OrtCopyTensors or OrtValue.Handle not found: each device copy would allocate");
        // The native call really is made: ORT has no CPU → CPU data transfer, so its status comes back as ORT's
        // exception.
        using var from = OrtValue.CreateTensorValueFromMemory(new float[] { 1, 2, 3 }, [3]);
        using var to = OrtValue.CreateTensorValueFromMemory(new float[3], [3]);
        var e = Assert.Throws<OnnxRuntimeException>(() => new TensorCopy([from], [to], throughOnnxRuntime: true).Run());
        Assert.Contains("Data transfer", e.Message);
        new TensorCopy([from], [to]).Run(); // between CPU tensors it is a plain copy
        Assert.Equal([1f, 2f, 3f], to.GetTensorDataAsSpan<float>().ToArray());
    }

    [Fact]
    public void A_fixed_batch_model_gets_advice_that_fits_it()
    {
        using var fixed4 = Fixtures.Load(Fixtures.Spec() with { FixedBatch = 4 });
        Assert.Equal(8, Fixtures.Generate(fixed4, "ddim", 4, count: 8, batch: 4).Count);
        var e = Assert.Throws<DiffusionArgumentException>(() =>
            Fixtures.Generate(fixed4, "ddim", 4, count: 8, batch: 3));
        Assert.Equal("BatchSize", e.Parameter);
        Assert.Contains("use 4 images per call and a count that is a multiple of 4", e.Problem);
        Assert.Equal("Count",
            Assert.Throws<DiffusionArgumentException>(() =>
                Fixtures.Generate(fixed4, "ddim", 4, count: 6, batch: 4)).Parameter);
        var classes = new[] { new[] { 0.5f }, new[] { -0.5f }, new[] { 0f } };
        using var guided4 = Fixtures.Load(Fixtures.Spec() with { FixedBatch = 4, ClassMeans = classes });
        var request = new GenerationRequest
        {
            Sampler = "ddim", Steps = 4, Count = 4, BatchSize = 2, ClassLabels = [0], Guidance = 2,
        };
        Assert.Equal(4, new ImageGenerator(guided4).Generate(request).Count); // guidance doubles 2 to the model's 4
        var doubled = Assert.Throws<DiffusionArgumentException>(() =>
            new ImageGenerator(guided4).Generate(request with { BatchSize = 4 }));
        Assert.Equal("BatchSize", doubled.Parameter);
        Assert.Contains("use 2 images per call (guidance doubles it)", doubled.Problem);
        using var guided3 = Fixtures.Load(Fixtures.Spec() with { FixedBatch = 3, ClassMeans = classes });
        var odd = Assert.Throws<DiffusionArgumentException>(() => new ImageGenerator(guided3).Generate(request));
        Assert.Equal("Guidance", odd.Parameter);
        Assert.Contains("needs an even one", odd.Problem);
    }

    [Fact]
    public void NaN_from_the_model_stops_sampling_with_a_clear_error()
    {
        using var model = DiffusionModel.Load(Fixtures.NanModel(), "nan.onnx");
        var e = Assert.Throws<DiffusionException>(() => Fixtures.Generate(model, "ddim", 5, count: 2, batch: 2));
        Assert.Contains("NaN", e.Message);
        Assert.Contains("nan.onnx", e.Message);
        Assert.Contains("from finite inputs", e.Message);
    }

    [Fact]
    public void A_request_over_the_memory_budget_is_refused_before_anything_is_allocated()
    {
        // the largest sample size a config may declare: 16384×4096, 256 MiB an image
        using var model = Fixtures.Load(Fixtures.Spec() with { Height = 16384, Width = 4096 });
        var generator = new ImageGenerator(model);
        var eight = new GenerationRequest { Count = 8, BatchSize = 8, Steps = 2 };
        Assert.Equal((long)16384 * 4096 * 4 * (8 + 2 * 8 + 8 * 8), generator.MemoryEstimate(eight));
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var e = Assert.Throws<DiffusionArgumentException>(() => generator.Generate(eight));
        Assert.True(GC.GetTotalAllocatedBytes(precise: true) - before < 1 << 20, "refused after allocating");
        Assert.Equal("BatchSize", e.Parameter);
        Assert.Contains("8 image(s) of [1,16384,4096] at 8 per network call need about 22.0 GiB", e.Message);
        Assert.Contains($"over the budget of {ImageGenerator.DefaultMemoryBudget / (double)(1L << 30):0.0} GiB (a "
            + "quarter of the", e.Message);
        var small = new ImageGenerator(model) { MemoryBudget = 1L << 30 };
        var one = Assert.Throws<DiffusionArgumentException>(() => small.Generate(eight with { Count = 1, BatchSize = 1 }));
        Assert.Equal("Count", one.Parameter);
        Assert.EndsWith("over the budget of 1.0 GiB; generate fewer images per call or per run.", one.Message);
        Assert.Throws<DiffusionArgumentException>(() => new ImageGenerator(model) { MemoryBudget = 0 });
    }

    [Fact]
    public void A_divergence_of_the_sampler_is_not_blamed_on_the_model()
    {
        using var model = Fixtures.Gaussian();
        int d = model.ImageSize;
        // finite x_T whose scaling by the first level's noise scale leaves float32's range
        var huge = Enumerable.Repeat(float.MaxValue, 2 * d).ToArray();
        var e = Assert.Throws<DiffusionException>(() => new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "euler", Steps = 5, Count = 2, BatchSize = 2, InitialNoise = huge,
        }));
        Assert.StartsWith("Sampling diverged: x_t held ", e.Message);
        Assert.DoesNotContain("Model '", e.Message);
    }

    [Fact]
    public void Foreign_layouts_int64_and_scalar_timesteps_and_out_sample_are_adapted_to()
    {
        using var reference = Fixtures.Gaussian();
        var expected = Fixtures.Generate(reference, "ddim", 20, count: 3, batch: 3).Images;
        foreach (var spec in new[]
        {
            Fixtures.Spec() with { Int64Timestep = true, OutputName = "out_sample" },
            Fixtures.Spec() with { ScalarTimestep = true },
            Fixtures.Spec() with { ScalarTimestep = true, Int64Timestep = true },
        })
        {
            using var model = Fixtures.Load(spec);
            Assert.Equal(spec.OutputName, model.OutputName);
            // trailing timesteps are integers
            var images = Fixtures.Generate(model, "ddim", 20, count: 3, batch: 3).Images;
            for (int i = 0; i < images.Length; i++) Assert.Equal(expected[i], images[i], 1e-4);
        }
        using var scalar = Fixtures.Load(Fixtures.Spec() with { ScalarTimestep = true });
        var e = Assert.Throws<DiffusionException>(() => Fixtures.Generate(scalar, "rk45", 1, count: 3, batch: 3));
        Assert.Contains("BatchSize 1", e.Message);
        Fixtures.Generate(scalar, "rk45", 1, count: 2, batch: 1);
    }

    [Fact]
    public void Python_json_with_non_finite_literals_is_read_and_refused_where_a_number_must_be_finite()
    {
        // diffusers' save_config writes DPMSolverMultistepScheduler's "lambda_min_clipped": -Infinity (no clipping).
        var config = DiffusionConfig.Parse("""{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "beta_end": 0.012, "x": NaN, "y": Infinity, "note": "NaN and -Infinity inside a string stay"}""", "scheduler_config.json");
        Assert.Equal(0.012, config.BetaEnd);
        Assert.Equal(double.NegativeInfinity, config.Scheduler!.LambdaMinClipped);
        Assert.Equal("""{"a":"\u0000python:-Infinity","b":"-Infinity \" NaN"}""",
            PythonJson.Normalize("""{"a":-Infinity,"b":"-Infinity \" NaN"}"""));
        // A key that holds a number is never a literal's default without a word.
        foreach (var (json, message) in new[]
        {
            ("""{"beta_end": NaN}""", "scheduler_config.json: 'beta_end' is NaN; expected a finite number."),
            ("""{"clip_sample_range": Infinity}""", "'clip_sample_range' is Infinity; expected a finite number."),
            ("""{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": NaN}""",
                "'lambda_min_clipped' is NaN; expected a finite number."),
            ("""{"_class_name": "DDIMScheduler", "steps_offset": -Infinity}""", "'steps_offset' is -Infinity"),
        })
            Assert.Contains(message, Assert.Throws<DiffusionException>(() =>
                DiffusionConfig.Parse(json, "scheduler_config.json")).Message);
    }

    [Fact]
    public void A_diffusers_folder_loads_with_its_scheduler_and_unet_configs()
    {
        var classes = new[] { new[] { 0.5f }, new[] { -0.5f }, new[] { 0f } };
        var foreign = Fixtures.Spec() with
        {
            ClassMeans = classes, WithMetadata = false, Int64Timestep = true, OutputName = "out_sample",
        };
        var folder = Fixtures.TempFolder();
        Directory.CreateDirectory(Path.Combine(folder, "unet"));
        Directory.CreateDirectory(Path.Combine(folder, "scheduler"));
        File.WriteAllBytes(Path.Combine(folder, "unet", "model.onnx"), GaussianModel.Build(foreign));
        File.WriteAllText(Path.Combine(folder, "scheduler", "scheduler_config.json"), """
            {"_class_name": "DDIMScheduler", "_diffusers_version": "0.31.0", "beta_start": 0.0001, "beta_end": 0.02,
             "beta_schedule": "linear", "num_train_timesteps": 1000, "prediction_type": "epsilon", "clip_sample": false,
             "timestep_spacing": "trailing", "lambda_min_clipped": -Infinity, "set_alpha_to_one": false}
            """);
        File.WriteAllText(Path.Combine(folder, "unet", "config.json"), """
            {"_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 1, "out_channels": 1, "num_class_embeds": 2}
            """);
        using var model = DiffusionModel.Load(folder);
        Assert.Equal((1, 8, 8, 2), (model.Channels, model.Height, model.Width, model.NumClasses));
        Assert.Contains("scheduler_config.json + ", model.ConfigSource);
        Assert.EndsWith(Path.Combine("unet", "config.json"), model.ConfigSource);
        using var reference = Fixtures.Load(foreign with { WithMetadata = true });
        var request = new GenerationRequest
        {
            Sampler = "ddim", Steps = 10, Count = 4, BatchSize = 4, ClassLabels = [1],
        };
        Assert.False(model.HasNullClass); // num_class_embeds rows, no null label
        Assert.Equal(new ImageGenerator(reference).Generate(request).Images,
            new ImageGenerator(model).Generate(request).Images);
        Directory.Delete(Path.Combine(folder, "unet"), recursive: true);
        Assert.Contains("unet/model.onnx",
            Assert.Throws<DiffusionException>(() => DiffusionModel.Load(folder)).Message);
    }
}
