using Diffusion.ReferenceModels;
using Diffusion.Runtime;
using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Pipelines;
using Xunit;

namespace Diffusion.Tests;

/// <summary>
/// The latent text-to-image pipeline on the closed-form Stable Diffusion-layout folder (see
/// <see cref="LatentGaussianFolder"/>): the prompt's embedding sets the latents' mean, guidance moves it to
/// μ_∅ + w(μ_c − μ_∅), the decoder's output is its 1×1 convolution of z / scaling_factor — all computed here by hand.
/// </summary>
public class TextToImageTests
{
    private static readonly Lazy<string> Folder = new(() =>
        LatentGaussianFolder.Write(Path.Combine(TestFolders.Create("sd"), "model")));

    private static TextToImagePipeline Load(LatentGaussianSpec? spec = null) => TextToImagePipeline.Load(spec is null
        ? Folder.Value : LatentGaussianFolder.Write(Path.Combine(TestFolders.Create("sd"), "model"), spec));

    /// <summary>μ per latent channel: the mean of the prompt's token embeddings over the 77 positions.</summary>
    private static double[] Mean(TextToImagePipeline p, string prompt, int channels = 4)
    {
        var ids = p.Tokenizer.Encode(prompt).Ids;
        return [.. Enumerable.Range(0, channels).Select(c => ids.Average(id => LatentGaussianFolder.Embedding(id, c)))];
    }

    private static double[] ChannelMeans(float[] latents, int channels, int perChannel)
    {
        var sums = new double[channels];
        for (int i = 0; i < latents.Length; i++) sums[i / perChannel % channels] += latents[i];
        return [.. sums.Select(s => s / (latents.Length / channels))];
    }

    [Fact]
    public void The_folder_loads_with_every_component_and_its_own_config()
    {
        using var p = Load();
        Assert.Equal("OnnxStableDiffusionPipeline", p.Index.ClassName);
        Assert.Equal(4, p.TextEncoder.HiddenSize);
        Assert.Equal(64, p.Width); // sample_size 8 × the VAE's factor 8
        Assert.Equal(0.18215, p.VaeDecoder.Config.ScalingFactor, 6);
        Assert.NotNull(p.VaeEncoder);
        Assert.Equal(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int64, p.Unet.TimestepElementType);
        Assert.NotNull(p.Unet.Config.Scheduler); // PNDMScheduler from scheduler/scheduler_config.json
    }

    [Fact]
    public void The_prompt_sets_the_latents_mean_and_the_decoder_is_applied_image_by_image()
    {
        using var p = Load();
        var r = p.Generate(new GenerationRequest
        {
            Prompt = "a photo of a red cat", Sampler = "ddim", Steps = 100, Count = 24, BatchSize = 8, Seed = 3,
            KarrasSigmas = true,
        });
        Assert.Equal((24, 3, 64, 64), (r.Count, r.Channels, r.Height, r.Width));
        var expected = Mean(p, "a photo of a red cat");
        var actual = ChannelMeans(r.Latents!, 4, 64);
        for (int c = 0; c < 4; c++) Assert.Equal(expected[c], actual[c], 0.02);
        Assert.True(r.TextEncoderTime > TimeSpan.Zero && r.VaeTime > TimeSpan.Zero);
        // pixel (o, y, x) = Σ_c W[o,c] z[c, y/8, x/8] / scaling_factor
        for (int i = 0; i < 2; i++)
            for (int o = 0; o < 3; o++)
                foreach (var (y, x) in new[] { (0, 0), (13, 50), (63, 63) })
                {
                    double v = 0;
                    for (int c = 0; c < 4; c++)
                        v += LatentGaussianFolder.DecoderWeight(o, c) * r.Latents![i * 256 + c * 64 + y / 8 * 8 + x / 8];
                    Assert.Equal(v / LatentGaussianFolder.ScalingFactor, r.Image(i)[o * 4096 + y * 64 + x], 1e-4);
                }
    }

    [Fact]
    public void Guidance_with_a_negative_prompt_equals_the_closed_form_mean_and_is_one_batched_call()
    {
        using var p = Load();
        var request = new GenerationRequest
        {
            Prompt = "green dog on the moon", NegativePrompt = "blurry ugly", Guidance = 3.5f, Sampler = "dpm++2m",
            Steps = 20, Count = 4, BatchSize = 4, Seed = 9,
        };
        var guided = p.Generate(request);
        // The same loop on the UNet alone, conditioned on a sequence whose mean is μ_∅ + w(μ_c − μ_∅), unguided.
        var (mc, mu) = (Mean(p, request.Prompt), Mean(p, request.NegativePrompt));
        var target = new float[77 * 4];
        for (int j = 0; j < 77; j++)
            for (int c = 0; c < 4; c++) target[j * 4 + c] = (float)(mu[c] + 3.5 * (mc[c] - mu[c]));
        var exact = new ImageGenerator(p.Unet).Generate(request with
        {
            Prompt = null, NegativePrompt = null, Guidance = 1,
            Condition = Condition.None.With(TextToImagePipeline.HiddenStatesInput,
                ConditioningTensor.FromFloats(target, 1, 77, 4)),
        });
        Assert.Equal(exact.NetworkCalls, guided.NetworkCalls);
        for (int i = 0; i < exact.Images.Length; i++) Assert.Equal(exact.Images[i], guided.Latents![i], 2e-4f);
        // the empty prompt is the default unconditional side
        var empty = p.Generate(request with { NegativePrompt = null });
        Assert.NotEqual(guided.Latents, empty.Latents);
    }

    [Fact]
    public void Initial_latents_are_taken_as_given_and_the_batch_size_changes_only_rounding()
    {
        using var p = Load();
        var request = new GenerationRequest { Prompt = "blue cat", Sampler = "euler", Steps = 8, Count = 5, Seed = 4 };
        var a = p.Generate(request with { BatchSize = 5 });
        var b = p.Generate(request with { BatchSize = 2 });
        // The same noise per image; ONNX Runtime's ReduceMean sums in another order at another batch size, so the
        // network's outputs (and the images) agree to float rounding, not bit for bit.
        for (int i = 0; i < a.Images.Length; i++) Assert.Equal(a.Images[i], b.Images[i], 1e-5f);
        var noise = new float[5 * 256];
        new Runtime.Noise.NoiseGenerator(4).Fill(noise, 0, 256, 0);
        Assert.Equal(a.Images, p.Generate(request with { InitialNoise = noise, BatchSize = 5 }).Images);
    }

    [Fact]
    public void Img2img_encodes_the_input_and_a_tiny_strength_returns_its_decoding()
    {
        using var p = Load();
        var pixels = new float[2 * 3 * 64 * 64];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = MathF.Sin(i * 0.01f) * 0.8f;
        var request = new GenerationRequest
        {
            Prompt = "red dog", Sampler = "ddim", Steps = 20, Count = 2, InitialImages = pixels, Strength = 0.01,
        };
        var unchanged = p.Generate(request);
        var z = p.VaeEncoder!.Encode(pixels.AsSpan(0, 3 * 4096), 64, 64);
        Assert.Equal(z, unchanged.Latents!.AsSpan(0, 256).ToArray());
        // latent (c, i, j) = scaling · Σ_o W'[c,o] · mean of the 8×8 block
        double block = 0;
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                for (int o = 0; o < 3; o++) block += LatentGaussianFolder.EncoderWeight(1, o) * pixels[o * 4096 + y * 64 + x];
        Assert.Equal(LatentGaussianFolder.ScalingFactor * block / 64, z[64], 1e-5);
        var edited = p.Generate(request with { Strength = 0.6 });
        Assert.NotEqual(unchanged.Latents, edited.Latents);
        Assert.Equal(12, edited.NetworkCalls); // round(0.6 · 20) DDIM steps
    }

    [Fact]
    public void Inpainting_keeps_the_known_latents_where_the_mask_keeps_and_samples_the_prompt_elsewhere()
    {
        using var p = Load();
        const int n = 16;
        var known = new float[n * 3 * 64 * 64];
        for (int i = 0; i < known.Length; i++) known[i] = MathF.Cos(i * 0.003f) * 0.7f;
        var mask = new float[known.Length];
        for (int i = 0; i < mask.Length; i++) mask[i] = i % 4096 / 64 < 32 ? 1 : 0; // keep the top half
        var r = p.Generate(new GenerationRequest
        {
            Prompt = "green cat", Sampler = "ddpm", Steps = 100, Count = n, Seed = 2, KnownImages = known, Mask = mask,
            Options = new Runtime.Samplers.SamplerOptions { Resampling = 2 },
        });
        var mu = Mean(p, "green cat");
        var sums = new double[4];
        for (int i = 0; i < n; i++)
        {
            var z = p.VaeEncoder!.Encode(known.AsSpan(i * 3 * 4096, 3 * 4096), 64, 64);
            for (int c = 0; c < 4; c++)
                for (int y = 0; y < 8; y++)
                    for (int x = 0; x < 8; x++)
                    {
                        int at = c * 64 + y * 8 + x;
                        if (y < 4) Assert.Equal(z[at], r.Latents![i * 256 + at]); // kept exactly
                        else sums[c] += r.Latents![i * 256 + at];
                    }
        }
        for (int c = 0; c < 4; c++) Assert.Equal(mu[c], sums[c] / (n * 32), 0.05);
        var e = Assert.Throws<DiffusionArgumentException>(() => p.Generate(new GenerationRequest
        {
            Prompt = "cat", Count = n, KnownImages = known,
        }));
        Assert.Equal("Mask", e.Parameter);
    }

    [Fact]
    public void A_float16_export_gives_the_float32_images_within_float16_precision()
    {
        using var single = Load();
        using var half = Load(new LatentGaussianSpec { Float16 = true });
        var request = new GenerationRequest
        {
            Prompt = "a photo of the moon", NegativePrompt = "ugly", Guidance = 2, Sampler = "unipc", Steps = 12,
            Count = 2, Seed = 1,
        };
        var a = single.Generate(request);
        var b = half.Generate(request);
        double worst = a.Images.Zip(b.Images, (x, y) => Math.Abs(x - y)).Max();
        Assert.InRange(worst, 1e-7, 2e-2);
    }

    [Fact]
    public void Sizes_other_than_the_default_sample_at_their_own_latent_size()
    {
        using var p = Load();
        var r = p.Generate(new GenerationRequest { Prompt = "cat", Width = 96, Height = 48, Count = 1, Steps = 4 });
        Assert.Equal((3, 48, 96), (r.Channels, r.Height, r.Width));
        Assert.Equal(4 * 6 * 12, r.Latents!.Length);
        Assert.Empty(r.Warnings);
        var cut = p.Generate(new GenerationRequest
        {
            Prompt = string.Join(" ", Enumerable.Repeat("red cat", 50)) + " moon", Count = 1, Steps = 2,
        });
        Assert.Contains("truncated", Assert.Single(cut.Warnings));
        Assert.Contains("moon", cut.Warnings[0]);
    }

    [Fact]
    public void Bad_requests_and_broken_folders_are_refused_in_one_line_naming_what_is_wrong()
    {
        using var p = Load();
        var good = new GenerationRequest { Prompt = "cat", Count = 1, Steps = 2 };
        void Refused(GenerationRequest r, string parameter, string words)
        {
            var e = Assert.Throws<DiffusionArgumentException>(() => p.Generate(r));
            Assert.Equal(parameter, e.Parameter);
            Assert.Contains(words, e.Message);
        }
        Refused(good with { Width = 100 }, "Width", "multiple of 8");
        Refused(good with { Height = 0 }, "Height", "multiple of 8");
        Refused(good with { NegativePrompt = "dog" }, "NegativePrompt", "guidance weight");
        Refused(good with { ClassLabels = [1] }, "ClassLabels", "conditioned by its prompts");
        Refused(good with { Prompt = new string('a', 20_000) }, "Prompt", "at most 16,384");
        Refused(good with { InitialImages = new float[10] }, "InitialImages", "need 12288");
        Refused(good with { Steps = 0 }, "Steps", "sampling steps");

        void Broken(Action<string> damage, string words, LatentGaussianSpec? spec = null)
        {
            var folder = LatentGaussianFolder.Write(Path.Combine(TestFolders.Create("sd"), "model"), spec);
            damage(folder);
            var e = Assert.ThrowsAny<DiffusionException>(() => TextToImagePipeline.Load(folder).Dispose());
            Assert.Contains(words, e.Message);
            Assert.DoesNotContain("\n", e.Message);
        }
        Broken(f => Directory.Delete(Path.Combine(f, "text_encoder"), true), "text_encoder");
        Broken(f => File.Delete(Path.Combine(f, "tokenizer", "merges.txt")), "merges.txt");
        Broken(f => File.Delete(Path.Combine(f, "model_index.json")), "model_index.json");
        Broken(_ => { }, "cross-attention width is 4", new LatentGaussianSpec { HiddenSize = 8 });

        using var overflowing = Load(new LatentGaussianSpec { Float16 = true, DecoderGain = 1e6f });
        var nan = Assert.Throws<DiffusionException>(() => overflowing.Generate(good));
        Assert.Contains("float16 VAE overflows", nan.Message);
    }

    [Fact]
    public void A_pixel_model_refuses_a_prompt_by_name()
    {
        using var model = Fixtures.Gaussian();
        var e = Assert.Throws<DiffusionArgumentException>(() =>
            new ImageGenerator(model).Generate(new GenerationRequest { Prompt = "cat", Count = 1 }));
        Assert.Equal("Prompt", e.Parameter);
    }
}
