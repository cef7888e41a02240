using System.Text.Json.Nodes;
using Diffusion.Runtime;
using Diffusion.Runtime.Diffusers;
using Diffusion.Runtime.Editing;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Pipelines;
using Xunit;

namespace Diffusion.Tests;

/// <summary>
/// The text-to-image pipeline against diffusers' own StableDiffusionPipeline (tests/Fixtures/Diffusers/sd-tiny, made
/// by interop/diffusers/make_sd_fixtures.py: a UNet2DConditionModel and an AutoencoderKL made with diffusers' code and
/// exported in Optimum's layout, transformers' CLIPTokenizer, a small CLIP text transformer standing in for
/// CLIPTextModel): for the same initial latents, the same images (output_type="np") within 1e-4, for each scheduler
/// walked as diffusers walks it, with and without guidance and negative prompts; img2img against
/// StableDiffusionImg2ImgPipeline; inpainting against StableDiffusionInpaintPipeline (its latent blending for a
/// 4-channel UNet). Euler a's step noise is the runtime's keyed noise on both sides (the script draws it with
/// interop/diffusers/keyed_noise.py, a second implementation of NoiseGenerator).
/// </summary>
public class DiffusersPipelineTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static string Folder => FixtureFolder("sd-tiny");

    /// <summary>The same components with diffusers' 9-channel inpainting UNet.</summary>
    private static string InpaintFolder => FixtureFolder("sd-tiny-inpaint");

    private static string FixtureFolder(string name) =>
        Path.Combine(AppContext.BaseDirectory, "Fixtures", "Diffusers", name);

    private static JsonObject ReferenceIn(string folder) =>
        (JsonObject)JsonNode.Parse(PythonJson.Normalize(File.ReadAllText(Path.Combine(folder, "reference.json"))))!;

    private static readonly Lazy<JsonObject> Reference = new(() => ReferenceIn(Folder));

    private static readonly Lazy<JsonObject> InpaintReference = new(() => ReferenceIn(InpaintFolder));

    private static readonly Lazy<TextToImagePipeline> Pipeline = new(() => TextToImagePipeline.Load(Folder));

    private static readonly Lazy<TextToImagePipeline> InpaintPipeline = new(() =>
        TextToImagePipeline.Load(InpaintFolder));

    /// <summary>sd-tiny's four networks in float16 (interop/diffusers/float16.py), against the float32 reference.</summary>
    private static readonly Lazy<TextToImagePipeline> HalfPipeline = new(() =>
        TextToImagePipeline.Load(FixtureFolder("sd-tiny-fp16")));

    public static TheoryData<int> Cases()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Reference.Value["cases"]!.AsArray().Count; i++) data.Add(i);
        return data;
    }

    public static TheoryData<int> Img2ImgCases() => CasesOf("img2img");

    public static TheoryData<int> InpaintCases() => CasesOf("inpaint");

    public static TheoryData<int> InpaintingUnetCases() => CasesOf("inpaint", InpaintReference.Value);

    private static TheoryData<int> CasesOf(string section, JsonObject? reference = null)
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < (reference ?? Reference.Value)[section]!.AsArray().Count; i++) data.Add(i);
        return data;
    }

    [Fact]
    public void The_export_folder_loads_with_diffusers_configs()
    {
        var p = Pipeline.Value;
        Assert.Equal(2, p.Factor); // AutoencoderKL with two blocks: block_out_channels (8, 16)
        Assert.Equal(32, p.Width);
        Assert.Equal(32, p.TextEncoder.HiddenSize);
        Assert.Equal("PNDMScheduler", p.Unet.Config.Scheduler!.ClassName);
    }

    /// <summary>The script's second implementation of the keyed noise draws what NoiseGenerator draws.</summary>
    [Fact]
    public void The_fixture_scripts_keyed_noise_is_the_runtimes()
    {
        var expected = Floats(Reference.Value["keyed_noise"]);
        var ours = new float[expected.Length];
        new Diffusion.Runtime.Noise.NoiseGenerator((ulong)Reference.Value["noise_seed"]!).Fill(ours, image: 1, draw: 3);
        for (int i = 0; i < ours.Length; i++) Assert.True(Math.Abs(ours[i] - expected[i]) <= 1e-5,
            $"value {i}: {ours[i]} vs {expected[i]}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Our_images_equal_StableDiffusionPipeline_for_the_same_latents(int index) =>
        Compare(Reference.Value["cases"]![index]!, null);

    /// <summary>
    /// The float16 folder — every graph input, output and weight float16, fed and read through float32 buffers
    /// converted once per call — gives diffusers' float32 pipeline's images within 1e-2, for every scheduler and
    /// with and without guidance, as a float16 export should.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void The_float16_export_gives_the_float32_pipelines_images_within_1e_2(int index)
    {
        var p = HalfPipeline.Value;
        Assert.Equal(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16, p.Unet.SampleElementType);
        Compare(Reference.Value["cases"]![index]!, null, pipeline: p, tolerance: 1e-2);
    }

    public static TheoryData<int> Sd2Cases() => CasesOf("cases", ReferenceIn(FixtureFolder("sd2-tiny-768")));

    private static readonly Lazy<TextToImagePipeline> Sd2Pipeline = new(() =>
        TextToImagePipeline.Load(FixtureFolder("sd2-tiny-768")));

    /// <summary>
    /// SD 2.x's layout at its size (sd2-tiny-768): a v-prediction UNet with sample_size 96 under a factor-8 VAE, so
    /// 768×768 by default, with a float timestep and its weights in model.onnx_data, SD 2's DDIM scheduler config and
    /// the tokenizer padding with "!": one image per scheduler guided at 7.5 equals StableDiffusionPipeline's on a
    /// 96×96 grid of its pixels.
    /// </summary>
    [Theory]
    [MemberData(nameof(Sd2Cases))]
    public void Sd2_v_prediction_at_768_equals_StableDiffusionPipeline(int index)
    {
        var folder = FixtureFolder("sd2-tiny-768");
        var reference = ReferenceIn(folder);
        var p = Sd2Pipeline.Value;
        Assert.Equal((768, 768), (p.Width, p.Height));
        Assert.Equal(PredictionType.VPrediction, p.Unet.Config.Prediction);
        Assert.Equal(0, p.Tokenizer.Encode("").Ids[^1]); // padded with "!", id 0
        Assert.True(File.Exists(Path.Combine(folder, "unet", "model.onnx_data"))); // the weights as external data
        Assert.Equal(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, p.Unet.TimestepElementType);
        var c = reference["cases"]![index]!;
        var config = c["config"]!.AsObject().DeepClone().AsObject();
        config["_class_name"] = (string)c["scheduler"]!;
        var result = p.Generate(new GenerationRequest
        {
            SamplerInstance = new DiffusersSampler(DiffusionConfig.Parse(config.ToJsonString(), "the case").Scheduler!),
            Steps = (int)c["steps"]!, Count = 1, Prompt = (string)c["prompt"]!, Guidance = (float)(double)c["guidance"]!,
            InitialNoise = Runtime.Imaging.Npy.Load(Path.Combine(folder, "latents.npy")).Data,
            Seed = (ulong)reference["noise_seed"]!,
        });
        var expected = Runtime.Imaging.Npy.Load(Path.Combine(folder, "reference_images.npy")); // [cases, 96, 96, 3]
        int stride = (int)reference["stride"]!, grid = expected.Shape[1], h = result.Height, w = result.Width;
        Assert.Equal((768, 768), (h, w));
        double worst = 0;
        for (int y = 0; y < grid; y++)
            for (int x = 0; x < grid; x++)
                for (int k = 0; k < 3; k++)
                {
                    int py = y * stride + stride / 2, px = x * stride + stride / 2;
                    float ours = Math.Clamp(result.Images[(k * h + py) * w + px] / 2 + 0.5f, 0, 1);
                    worst = Math.Max(worst, Math.Abs(ours - expected.Data[((index * grid + y) * grid + x) * 3 + k]));
                }
        output.WriteLine($"sd2 {c["scheduler"]}: largest difference {worst:E2}");
        Assert.True(worst <= 1e-3, $"sd2 {c["scheduler"]}: largest difference {worst:E2}"); // measured ≤ 4.8e-5
    }

    /// <summary>
    /// StableDiffusionImg2ImgPipeline at strength 0.6: the input encoded by vae_encoder (the latent distribution's
    /// mode, as the export has it), noised with the same latents as ε, the last 12 of 20 steps — for PNDM the walk
    /// PNDMScheduler lays out for those 12 (make_sd_fixtures.py's plms_from_strength: diffusers' own slice is a step off).
    /// </summary>
    [Theory]
    [MemberData(nameof(Img2ImgCases))]
    public void Our_img2img_equals_StableDiffusionImg2ImgPipeline(int index) =>
        Compare(Reference.Value["img2img"]![index]!, Floats(Reference.Value["input_image"]));

    /// <summary>
    /// StableDiffusionInpaintPipeline with the 4-channel UNet, from pure noise: after each step the known image's
    /// latents noised with x_T (<see cref="KnownImageNoise.Initial"/>) replace the latents where the mask,
    /// resized as torch resizes it, keeps them; the clean latents after the last. The masks' edges fall inside the
    /// 2×2 latent blocks, so a latent cell reading another pixel of its block than diffusers' fails here.
    /// </summary>
    [Theory]
    [MemberData(nameof(InpaintCases))]
    public void Our_inpainting_equals_StableDiffusionInpaintPipeline(int index) =>
        Compare(Reference.Value["inpaint"]![index]!, null, Inpainting(Reference.Value));

    /// <summary>The float16 folder through vae_encoder too: img2img and latent-blended inpainting within 1e-2 of the
    /// float32 pipelines' images.</summary>
    [Theory]
    [MemberData(nameof(Img2ImgCases))]
    public void The_float16_export_gives_the_float32_img2img_images_within_1e_2(int index) =>
        Compare(Reference.Value["img2img"]![index]!, Floats(Reference.Value["input_image"]), pipeline: HalfPipeline.Value,
            tolerance: 1e-2);

    [Theory]
    [MemberData(nameof(InpaintCases))]
    public void The_float16_export_gives_the_float32_inpainted_images_within_1e_2(int index) =>
        Compare(Reference.Value["inpaint"]![index]!, null, Inpainting(Reference.Value), HalfPipeline.Value,
            tolerance: 1e-2);

    /// <summary>
    /// StableDiffusionInpaintPipeline with diffusers' 9-channel inpainting UNet: the latent mask (1 = repaint) and the
    /// latents of the known image with the repainted region set to 0 are read after the latents at every call, on
    /// both sides of guidance; nothing is blended in.
    /// </summary>
    [Theory]
    [MemberData(nameof(InpaintingUnetCases))]
    public void Our_inpainting_UNet_equals_StableDiffusionInpaintPipeline(int index)
    {
        var p = InpaintPipeline.Value;
        Assert.True(p.IsInpaintingUnet);
        Assert.Equal((4, 5), (p.Unet.Channels, p.Unet.ConcatChannels));
        Compare(InpaintReference.Value["inpaint"]![index]!, null, Inpainting(InpaintReference.Value), p,
            InpaintReference.Value);
    }

    /// <summary>
    /// The concatenated channels are told from the graph (a fixed output channel count below the input's) and checked
    /// per request: required by the inpainting UNet, refused by any other model, shaped [E, h, w].
    /// </summary>
    [Fact]
    public void Concatenated_channels_are_required_where_the_graph_reads_them_and_refused_elsewhere()
    {
        var unet = InpaintPipeline.Value.Unet;
        var embedding = Runtime.Conditioning.Condition.None.With(TextToImagePipeline.HiddenStatesInput,
            Runtime.Conditioning.ConditioningTensor.FromFloats(new float[77 * 32], 1, 77, 32));
        var request = new GenerationRequest { Sampler = "ddim", Steps = 2, Count = 2, Condition = embedding };
        var loop = new ImageGenerator(unet);
        var missing = Assert.Throws<DiffusionArgumentException>(() => loop.Check(request));
        Assert.Equal("Concatenated", missing.Parameter);
        Assert.Contains("reads 5 channels after the image's 4", missing.Problem);
        var wrong = Runtime.Conditioning.ConditioningTensor.FromFloats(new float[2 * 4 * 16 * 16], 2, 4, 16, 16);
        Assert.Contains("float [5,16,16]", Assert.Throws<DiffusionArgumentException>(() =>
            loop.Check(request with { ConcatenatedChannels = wrong })).Problem);
        var right = Runtime.Conditioning.ConditioningTensor.FromFloats(new float[5 * 16 * 16], 1, 5, 16, 16);
        var images = loop.Generate(request with { ConcatenatedChannels = right });
        Assert.All(images.Images, v => Assert.True(float.IsFinite(v)));
        var plain = new ImageGenerator(Pipeline.Value.Unet);
        Assert.Contains("reads no channels after the image's", Assert.Throws<DiffusionArgumentException>(() =>
            plain.Check(request with { ConcatenatedChannels = right })).Problem);
    }

    /// <summary>The reference's known images and its mask (diffusers': 1 = repaint) as ours: 1 = keep, per channel.</summary>
    private static (float[] Known, float[] Keep) Inpainting(JsonObject reference)
    {
        var repaint = Floats(reference["inpaint_mask"]); // [2, 1, 32, 32]
        int plane = repaint.Length / 2;
        var keep = new float[2 * 3 * plane];
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 3; k++)
                for (int i = 0; i < plane; i++) keep[(n * 3 + k) * plane + i] = 1 - repaint[n * plane + i];
        return (Floats(reference["input_image"]), keep);
    }

    private static float[] Floats(JsonNode? node) => node!.AsArray().Select(v => (float)(double)v!).ToArray();

    private void Compare(JsonNode c, float[]? input, (float[] Known, float[] Keep)? inpaint = null,
        TextToImagePipeline? pipeline = null, JsonObject? reference = null, double tolerance = 1e-4)
    {
        reference ??= Reference.Value;
        pipeline ??= Pipeline.Value;
        // an inpainting UNet reads the mask itself: no known region is blended in, so no noise for it is chosen
        bool blends = inpaint is not null && !pipeline.IsInpaintingUnet;
        var config = c["config"]!.AsObject().DeepClone().AsObject();
        config["_class_name"] = (string)c["scheduler"]!;
        var scheduler = DiffusionConfig.Parse(config.ToJsonString(), "the case's scheduler").Scheduler!;
        var result = pipeline.Generate(new GenerationRequest
        {
            SamplerInstance = new DiffusersSampler(scheduler), Steps = (int)c["steps"]!, Count = 2, BatchSize = 2,
            InitialNoise = Floats(reference["latents"]), Prompt = (string)c["prompt"]!,
            NegativePrompt = (string?)c["negative_prompt"], Guidance = (float)(double)c["guidance"]!,
            InitialImages = input, Strength = c["strength"] is JsonNode strength ? (double)strength : 1,
            KnownImages = inpaint?.Known, Mask = inpaint?.Keep,
            KnownImageNoise = blends ? KnownImageNoise.Initial : KnownImageNoise.Fresh,
            Seed = (ulong)reference["noise_seed"]!,
        });
        var expected = Floats(c["images"]); // [N, H, W, 3] in [0, 1]
        int h = result.Height, w = result.Width;
        double worst = 0;
        for (int n = 0; n < 2; n++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int k = 0; k < 3; k++)
                    {
                        float ours = Math.Clamp(result.Images[((n * 3 + k) * h + y) * w + x] / 2 + 0.5f, 0, 1);
                        worst = Math.Max(worst, Math.Abs(ours - expected[((n * h + y) * w + x) * 3 + k]));
                    }
        var mode = (pipeline == HalfPipeline.Value ? "float16 " : "")
            + (input is not null ? "img2img " : inpaint is null ? "" : blends ? "inpaint " : "inpainting UNet ");
        var what = $"{mode}{c["scheduler"]}, w = {c["guidance"]}, negative '{c["negative_prompt"]}'";
        output.WriteLine($"{what}: largest difference {worst:E2}");
        // measured ≤ 1.6e-6 in float32
        Assert.True(worst <= tolerance, $"{what}: largest difference {worst:E2}");
    }
}
