using Diffusion.Cli;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Text;

namespace Diffusion.Cli.Tests;

/// <summary>
/// Text-to-image through the CLI on the closed-form Stable Diffusion-layout folder that <c>gaussian-model
/// --text-to-image</c> writes: tokenize, info, sample and img2img with prompts, and the refusals.
/// </summary>
public class CliTextToImageTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }

    private static readonly Lazy<string> Folder = new(() =>
    {
        var folder = Path.Combine(Fixtures.TempFolder(), "sd");
        var (code, _, error) = Run("gaussian-model", "--text-to-image", "--out", folder);
        Assert.True(code == 0, error);
        return folder;
    });

    [Fact]
    public void Tokenize_prints_the_ids_the_text_encoder_reads_and_the_tokens_on_request()
    {
        var (code, output, error) = Run("tokenize", "--model", Folder.Value, "a photo of a red cat!", "--tokens");
        Assert.True(code == 0, error);
        var lines = output.TrimEnd().Split('\n');
        Assert.Equal(2, lines.Length);
        var expected = ClipTokenizer.Load(Path.Combine(Folder.Value, "tokenizer")).Encode("a photo of a red cat!");
        Assert.Equal(string.Join(' ', expected.Ids), lines[0]);
        Assert.StartsWith("<|startoftext|> a</w> photo</w> of</w> a</w> red</w> cat</w> !</w> <|endoftext|>", lines[1]);
        var (longCode, _, longError) = Run("tokenize", "--model", Path.Combine(Folder.Value, "tokenizer"),
            string.Join(" ", Enumerable.Repeat("cat", 100)));
        Assert.Equal(0, longCode);
        Assert.Contains("truncated to 77 tokens", longError);
        var (missing, _, missingError) = Run("tokenize", "--model", Path.Combine(Folder.Value, "nothing"), "cat");
        Assert.Equal(1, missing);
        Assert.Contains("does not exist", missingError);
    }

    [Fact]
    public void Sample_with_a_prompt_writes_the_prompts_into_the_png()
    {
        var outPath = Path.Combine(Fixtures.TempFolder(), "cats.png");
        var (code, output, error) = Run("sample", "--model", Folder.Value, "--prompt", "a photo of a red cat",
            "--negative-prompt", "blurry", "-n", "2", "--steps", "8", "--scale", "1", "--out", outPath);
        Assert.True(code == 0, error);
        Assert.Contains("2 images 3×64×64", output);
        Assert.Contains("text encoder", output);
        var text = ImageFile.Read(outPath).Text[ImageFile.ParametersKey];
        Assert.Contains("prompt: a photo of a red cat", text);
        Assert.Contains("negative prompt: blurry", text);
        Assert.Contains("guidance: 7.5", text); // diffusers' default for text-to-image
        var npy = Path.Combine(Fixtures.TempFolder(), "wide.npy");
        var (wide, _, wideError) = Run("sample", "--model", Folder.Value, "--prompt", "cat", "--width", "128",
            "--height", "64", "-n", "1", "--steps", "4", "--out", npy);
        Assert.True(wide == 0, wideError);
        Assert.Equal([1, 3, 64, 128], Npy.Load(npy).Shape);
    }

    [Fact]
    public void A_prompt_draws_one_image_by_default_and_a_request_too_large_for_memory_says_which_knob_to_turn()
    {
        var (code, output, error) = Run("sample", "--model", Folder.Value, "--prompt", "cat", "--steps", "2",
            "--out", Path.Combine(Fixtures.TempFolder(), "one.npy"));
        Assert.True(code == 0, error);
        Assert.Contains("1 images 3×64×64", output); // diffusers' num_images_per_prompt, not the pixel models' 16
        // diffusers' tiny UNet at 256×256 latents: its first self-attention's scores alone would take 2 TiB at a
        // network batch of 32 (16 images, guided); ONNX Runtime's allocation fails, and the line names --batch.
        var sd = Path.Combine(TestFolders.Repository, "tests", "Fixtures", "Diffusers", "sd-tiny");
        var outPath = Path.Combine(Fixtures.TempFolder(), "huge.png");
        (code, _, error) = Run("sample", "--model", sd, "--prompt", "cat", "--width", "512", "--height", "512",
            "-n", "16", "--steps", "2", "--out", outPath);
        Assert.Equal(1, code);
        Assert.Contains("error: --batch: model '", error);
        Assert.Contains("ran out of memory at a network batch of 32 (one buffer of 2048 GiB): lower the batch", error);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:"));
        Assert.False(File.Exists(outPath));
    }

    [Fact]
    public void Img2img_inpaint_and_noise_work_in_latent_space()
    {
        var dir = Fixtures.TempFolder();
        var input = Path.Combine(dir, "in.png");
        ImageFile.Save(input, new Image8(64, 64, 3, Enumerable.Range(0, 64 * 64 * 3).Select(i => (byte)(i % 251))
            .ToArray()));
        var (code, _, error) = Run("img2img", "--model", Folder.Value, "--prompt", "blue dog", "--image", input,
            "--strength", "0.5", "-n", "1", "--steps", "10", "--out", Path.Combine(dir, "out.png"));
        Assert.True(code == 0, error);
        var mask = Path.Combine(dir, "mask.png");
        Assert.Equal(0, Run("mask", "--model", Folder.Value, "--repaint", "top", "--out", mask).Code);
        var (inpaint, _, inpaintError) = Run("inpaint", "--model", Folder.Value, "--prompt", "red cat", "--image",
            input, "--mask", mask, "-n", "1", "--steps", "10", "--sampler", "ddim", "--out", Path.Combine(dir, "i.npy"));
        Assert.True(inpaint == 0, inpaintError);
        // the folder's own PNDMScheduler, the kept region noised as diffusers' inpainting pipeline does
        var diffusersWay = Path.Combine(dir, "d.png");
        var (pndm, _, pndmError) = Run("inpaint", "--model", Folder.Value, "--prompt", "red cat", "--image", input,
            "--mask", mask, "--steps", "10", "--known-noise", "initial", "--out", diffusersWay);
        Assert.True(pndm == 0, pndmError);
        Assert.Contains("known noise: initial", ImageFile.Read(diffusersWay).Text[ImageFile.ParametersKey]);
        var (bad, _, badError) = Run("inpaint", "--model", Folder.Value, "--prompt", "red cat", "--image", input,
            "--mask", mask, "--known-noise", "same", "--out", Path.Combine(dir, "bad.png"));
        Assert.Equal(2, bad);
        Assert.Contains("--known-noise", badError);
        Assert.False(File.Exists(Path.Combine(dir, "bad.png")));
        // x_T of a text-to-image folder is latents: noise writes them, --init-noise takes them
        var noise = Path.Combine(dir, "zT.npy");
        Assert.Equal(0, Run("noise", "--model", Folder.Value, "--count", "2", "--out", noise).Code);
        Assert.Equal([2, 4, 8, 8], Npy.Load(noise).Shape);
        var (fromNoise, _, fromNoiseError) = Run("sample", "--model", Folder.Value, "--prompt", "cat", "--init-noise",
            noise, "--steps", "4", "--out", Path.Combine(dir, "z.npy"));
        Assert.True(fromNoise == 0, fromNoiseError);
    }

    /// <summary>
    /// diffusers' 9-channel inpainting UNet: inpaint feeds it the mask; info says what it reads; a prompt alone, or
    /// the blending options, are refused in one line naming the flag.
    /// </summary>
    [Fact]
    public void An_inpainting_unet_inpaints_and_refuses_plain_prompts()
    {
        var folder = Path.Combine(TestFolders.Repository, "tests", "Fixtures", "Diffusers", "sd-tiny-inpaint");
        var dir = Fixtures.TempFolder();
        var input = Path.Combine(dir, "in.png");
        ImageFile.Save(input, new Image8(32, 32, 3, Enumerable.Range(0, 32 * 32 * 3).Select(i => (byte)(i % 251))
            .ToArray()));
        var mask = Path.Combine(dir, "mask.png");
        Assert.Equal(0, Run("mask", "--model", folder, "--repaint", "top", "--out", mask).Code);
        var outPath = Path.Combine(dir, "filled.png");
        var (code, _, error) = Run("inpaint", "--model", folder, "--prompt", "red cat", "--image", input, "--mask",
            mask, "--steps", "6", "--out", outPath);
        Assert.True(code == 0, error);
        Assert.True(File.Exists(outPath));
        var (info, infoOut, _) = Run("info", "--model", folder);
        Assert.Equal(0, info);
        Assert.Contains("reads 5 more channels", infoOut.Replace("\n", " ").Replace("│", " "));
        var (plain, _, plainError) = Run("sample", "--model", folder, "--prompt", "red cat", "--out",
            Path.Combine(dir, "plain.png"));
        Assert.Equal(2, plain);
        Assert.Contains("--image: the UNet of '", plainError);
        Assert.Contains("inpainting UNet", plainError);
        var (jumps, _, jumpsError) = Run("inpaint", "--model", folder, "--prompt", "red cat", "--image", input,
            "--mask", mask, "--jumps", "2", "--out", Path.Combine(dir, "j.png"));
        Assert.Equal(2, jumps);
        Assert.Contains("--jumps", jumpsError);
        Assert.False(File.Exists(Path.Combine(dir, "plain.png")));
    }

    /// <summary>bench-runtime's torch baseline refuses what cannot run, in one line, before timing anything.</summary>
    [Fact]
    public void The_torch_pipeline_baseline_refuses_what_cannot_run()
    {
        var missing = Path.Combine(Fixtures.TempFolder(), "no-diffusers");
        var (code, _, error) = Run("bench-runtime", "--model", Folder.Value, "--torch-pipeline", missing);
        Assert.Equal(2, code);
        Assert.Contains($"--torch-pipeline: '{missing}' is not diffusers' src folder", error);
        var (pixel, _, pixelError) = Run("bench-runtime", "--model", Cli.Commands.ModelArguments.GaussianModelPath,
            "--torch-pipeline", missing);
        Assert.Equal(2, pixel);
        Assert.Contains("--torch-pipeline: applies to a text-to-image folder", pixelError);
        Assert.Single(pixelError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Info_describes_every_component()
    {
        var (code, output, error) = Run("info", "--model", Folder.Value);
        Assert.True(code == 0, error);
        foreach (var word in new[] { "tokenizer", "text_encoder", "vae_decoder", "vae_encoder", "scaling_factor",
            "encoder_hidden_states", "PNDMScheduler" })
            Assert.Contains(word, output);
    }

    [Fact]
    public void Bad_options_are_one_line_naming_the_flag()
    {
        var (code, _, error) = Run("sample", "--model", Folder.Value, "--prompt", "cat", "--width", "100");
        Assert.Equal(2, code);
        Assert.Contains("--width", error);
        Assert.Contains("multiple of 8", error);
        var (pixel, _, pixelError) = Run("sample", "--prompt", "cat", "--model",
            Cli.Commands.ModelArguments.GaussianModelPath);
        Assert.Equal(2, pixel);
        Assert.Contains("--prompt", pixelError);
        Assert.Contains("not text-conditioned", pixelError);
        var (negative, _, negativeError) = Run("sample", "--model", Folder.Value, "--prompt", "cat",
            "--negative-prompt", "dog", "--guidance", "1");
        Assert.Equal(2, negative);
        Assert.Contains("--negative-prompt", negativeError);
        var (bench, benchOutput, benchError) = Run("bench-runtime", "--model", Folder.Value, "--batches", "1",
            "--samplers", "ddim", "--steps", "2", "--repeat", "1");
        Assert.True(bench == 0, benchError); // the UNet's loop against its bare Run, then the pipeline's parts
        Assert.Contains("text encoder", benchOutput);
        Assert.Contains("images/s", benchOutput);
        var (info, _, infoError) = Run("interpolate", "--model", Folder.Value, "--from", "1", "--to", "2");
        Assert.Equal(1, info);
        Assert.Contains("text-to-image folder", infoError);
        var (exists, _, existsError) = Run("gaussian-model", "--text-to-image", "--out", Folder.Value);
        Assert.Equal(2, exists);
        Assert.Contains("exists", existsError);
    }
}
