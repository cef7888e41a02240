using System.Diagnostics;
using Diffusion.Cli;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Cli.Tests;

public class CliTests
{
    /// <summary>
    /// Runs the CLI; sample/info without --model get the closed-form Gaussian model (fast, with known classes).
    /// </summary>
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        if (args.Length > 0 && args[0] is "sample" or "info" or "img2img" or "inpaint" or "interpolate"
            && !args.Contains("--model"))
            args = [.. args, "--model", Cli.Commands.ModelArguments.GaussianModelPath];
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Sample_writes_a_grid_an_npy_and_a_folder()
    {
        var dir = Fixtures.TempFolder();
        var png = Path.Combine(dir, "grid.png");
        var (code, output, error) = Run("sample", "--class", "blue", "--guidance", "2", "-n", "6", "--steps", "8",
            "--out", png);
        Assert.True(code == 0, error);
        Assert.Contains("6 images 3×32×32", output);
        var grid = ImageFile.Read(png);
        Assert.Equal((3, 4 * (3 * 32 + 4 * 2)), (grid.Channels, grid.Width)); // shown 4×: 128 pixels a side for 32×32
        Assert.Contains("sampler: dpm++2m, steps: 8, seed: 0, guidance: 2, class: blue", grid.Text["parameters"]);
        Assert.Contains("shown 4×", output);
        Assert.Equal(0, Run("sample", "--class", "blue", "-n", "6", "--steps", "8", "--scale", "1", "--out", png).Code);
        Assert.Equal(3 * 32 + 4 * 2, ImageFile.Read(png).Width);
        Assert.Equal(2, Run("sample", "--scale", "0", "--out", png).Code);

        var npy = Path.Combine(dir, "x.npy");
        Assert.Equal(0, Run("sample", "--class", "blue", "-n", "4", "--steps", "8", "--batch", "3", "--out", npy).Code);
        var array = Npy.Load(npy);
        Assert.Equal(new[] { 4, 3, 32, 32 }, array.Shape);
        // Blue's mean is (−0.5, −0.3, 0.6): the blue plane must be brighter than the red one.
        Assert.True(array.Data.Skip(2 * 1024).Take(1024).Average() > array.Data.Take(1024).Average() + 0.8);

        var folder = Path.Combine(dir, "each") + "/";
        Assert.Equal(0, Run("sample", "--class", "all", "-n", "5", "--steps", "4", "--out", folder).Code);
        Assert.Equal(5, Directory.GetFiles(folder, "*.png").Length);
    }

    [Fact]
    public void Init_noise_reproduces_the_seeded_run_and_a_wrong_shape_is_refused()
    {
        var dir = Fixtures.TempFolder();
        var noise = new float[2 * 3 * 32 * 32];
        new Diffusion.Runtime.Noise.NoiseGenerator(4).Fill(noise, 0, 3 * 32 * 32, 0);
        Npy.Save(Path.Combine(dir, "noise.npy"), noise, 2, 3, 32, 32);
        Assert.Equal(0,
            Run("sample", "--seed", "4", "-n", "2", "--steps", "5", "--out", Path.Combine(dir, "a.npy")).Code);
        Assert.Equal(0,
            Run("sample", "--init-noise", Path.Combine(dir, "noise.npy"), "--steps", "5", "--out",
                Path.Combine(dir, "b.npy")).Code);
        Assert.Equal(Npy.Load(Path.Combine(dir, "a.npy")).Data, Npy.Load(Path.Combine(dir, "b.npy")).Data);

        Npy.Save(Path.Combine(dir, "bad.npy"), new float[2 * 32 * 32], 2, 1, 32, 32);
        var (code, _, error) = Run("sample", "--init-noise", Path.Combine(dir, "bad.npy"), "--out",
            Path.Combine(dir, "c.png"));
        Assert.Equal(1, code);
        Assert.Contains("expected (N,3,32,32)", error);
    }

    [Fact]
    public void Errors_exit_non_zero_with_one_line_and_leave_no_output_behind()
    {
        var dir = Fixtures.TempFolder();
        var nan = Path.Combine(dir, "nan.onnx");
        File.WriteAllBytes(nan, Fixtures.NanModel());
        var target = Path.Combine(dir, "out.png");
        // Exit code 1: a file, model or environment problem; 2: an argument that is wrong in itself.
        var cases = new (string[] Args, string Expected, int Code)[]
        {
            (["sample", "--model", nan, "--out", target], "NaN", 1),
            (["sample", "--model", Path.Combine(dir, "missing.onnx"), "--out", target], "does not exist", 1),
            (["sample", "--sampler", "plms", "--out", target], "unipc", 2),
            (["sample", "--sampler", "plms", "--out", target], "error: --sampler: 'plms' is not known", 2),
            (["sample", "--steps", "0", "--out", target], "error: --steps: expected 1…", 2),
            (["sample", "--sampler", "euler", "--eta", "0.5", "--out", target],
                "error: --eta: does not apply to the euler sampler", 2),
            (["sample", "--sampler", "rk45", "--rtol", "0", "--out", target],
                "error: --rtol: expected a tolerance in (0, 1]", 2),
            (["sample", "--guidance", "-1", "--out", target], "error: --guidance: expected a weight in 0…100", 2),
            (["sample", "--class", "purple", "--out", target], "red, green, blue, yellow", 2),
            (["sample", "--device", "cuda", "--out", target],
                "has no CUDA execution provider. Build with -p:OrtGpu=true", 1),
            (["sample", "--cuda-graphs", "--out", target], "error: --cuda-graphs: applies only to a CUDA device", 2),
            (["sample", "--out", Path.Combine(dir, "out.tiff")], ".png", 2),
            (["sample", "--out", "/"], "the file system's root cannot be replaced by an output folder", 2),
            (["sample", "--stpes", "5", "--out", target], "--stpes", 2),
            (["smaple"], "Unrecognized command or argument 'smaple'", 2),
        };
        foreach (var (args, expected, exitCode) in cases)
        {
            var (code, _, error) = Run(args);
            Assert.True(code == exitCode, $"{string.Join(" ", args)} → {code}, expected {exitCode}: {error}");
            Assert.Contains(expected, error);
            Assert.DoesNotContain("   at ", error); // no stack trace
            Assert.DoesNotContain("Required command", error);
        }
        Assert.Equal(["nan.onnx"], Directory.GetFiles(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Img2img_varies_a_png_and_refuses_bad_strengths_and_sizes()
    {
        var dir = Fixtures.TempFolder();
        var single = Path.Combine(dir, "one.png");
        Assert.Equal(0, Run("sample", "--class", "red", "-n", "1", "--steps", "5", "--out", single).Code);
        // one image: no grid border, shown 4×; img2img reads it back at 32×32
        Assert.Equal((128, 128), (ImageFile.Read(single).Width, ImageFile.Read(single).Height));
        var varied = Path.Combine(dir, "varied.npy");
        var (code, output, error) = Run("img2img", "--image", single, "--strength", "0.3", "--class", "red", "-n", "3",
            "--steps", "20", "--out", varied);
        Assert.True(code == 0, error);
        Assert.Contains("3 images", output);
        Assert.Equal(new[] { 3, 3, 32, 32 }, Npy.Load(varied).Shape);
        (code, _, error) = Run("img2img", "--image", single, "--strength", "1.5", "--out",
            Path.Combine(dir, "bad.png"));
        Assert.Equal(2, code);
        Assert.Contains("--strength", error);
        ImageFile.Save(Path.Combine(dir, "small.png"), new Image8(8, 8, 3, new byte[192]));
        (code, _, error) = Run("img2img", "--image", Path.Combine(dir, "small.png"), "--resize", "none", "--out",
            Path.Combine(dir, "bad.png"));
        Assert.Equal(1, code);
        Assert.Contains("is 8×8; model", error);
        Assert.Contains("needs 32×32 images and resizing is off", error);
        Assert.False(File.Exists(Path.Combine(dir, "bad.png")));
    }

    [Fact]
    public void Inpaint_keeps_the_masked_pixels_and_refuses_grey_masks()
    {
        var dir = Fixtures.TempFolder();
        var image = Path.Combine(dir, "image.png");
        Assert.Equal(0, Run("sample", "--class", "green", "-n", "1", "--steps", "5", "--out", image).Code);
        var maskPixels = new byte[32 * 32];
        // diffusers: black = keep, white = repaint
        for (int i = 0; i < maskPixels.Length; i++) maskPixels[i] = (byte)(i % 32 < 16 ? 0 : 255);
        ImageFile.Save(Path.Combine(dir, "mask.png"), new Image8(32, 32, 1, maskPixels));
        var inverted = maskPixels.Select(v => (byte)(255 - v)).ToArray();
        ImageFile.Save(Path.Combine(dir, "mask-white-keeps.png"), new Image8(32, 32, 1, inverted));
        var original = ImageGrid.FromImage(ImageFile.Read(image, new ImageReadOptions { Width = 32, Height = 32 }));
        foreach (var (mask, extra) in new[]
        {
            ("mask.png", Array.Empty<string>()), ("mask-white-keeps.png", ["--mask-keeps", "white"]),
        })
        {
            var outPath = Path.Combine(dir, $"filled-{mask}.npy");
            var (code, _,
                error) = Run(["inpaint", "--image", image, "--mask", Path.Combine(dir, mask), .. extra, "--class",
                    "red", "-n", "2", "--steps", "10", "--sampler", "ddpm", "--jumps", "3", "--out", outPath]);
            Assert.True(code == 0, error);
            var filled = Npy.Load(outPath).Data;
            for (int n = 0; n < 2; n++)
                for (int c = 0; c < 3; c++)
                    for (int p = 0; p < 1024; p++)
                        if (p % 32 < 16) Assert.Equal(original[c * 1024 + p], filled[n * 3072 + c * 1024 + p]);
        }
        maskPixels[5] = 128;
        ImageFile.Save(Path.Combine(dir, "grey.png"), new Image8(32, 32, 1, maskPixels));
        var (greyCode, _, greyError) = Run("inpaint", "--image", image, "--mask", Path.Combine(dir, "grey.png"),
            "--out", Path.Combine(dir, "no.png"));
        Assert.Equal(1, greyCode);
        Assert.Contains("not binary", greyError);
    }

    [Fact]
    public void Interpolate_between_seeds_starts_and_ends_at_their_samples()
    {
        var dir = Fixtures.TempFolder();
        var strip = Path.Combine(dir, "strip.npy");
        var (code, _, error) = Run("interpolate", "--from", "3", "--to", "4", "--frames", "5", "--class", "red",
            "--steps", "20", "--out", strip);
        Assert.True(code == 0, error);
        var frames = Npy.Load(strip);
        Assert.Equal(new[] { 5, 3, 32, 32 }, frames.Shape);
        foreach (var (seed, frame) in new[] { ("3", 0), ("4", 4) })
        {
            var single = Path.Combine(dir, $"seed{seed}.npy");
            Assert.Equal(0,
                Run("sample", "--seed", seed, "-n", "1", "--class", "red", "--sampler", "ddim", "--karras", "--steps",
                    "20", "--out", single).Code);
            Assert.Equal(Npy.Load(single).Data, frames.Data.AsSpan(frame * 3072, 3072).ToArray());
        }
        (code, _, error) = Run("interpolate", "--from", "3", "--to", "4", "--frames", "1", "--out",
            Path.Combine(dir, "x.png"));
        Assert.Equal(2, code);
        Assert.Contains("--frames", error);
    }

    [Fact]
    public void A_models_use_karras_sigmas_sets_the_default_grid_and_the_flag_overrides_it()
    {
        var dir = Fixtures.TempFolder();
        var karrasModel = Path.Combine(dir, "karras.onnx");
        File.WriteAllBytes(karrasModel,
            Diffusion.ReferenceModels.GaussianModel.Build(Fixtures.Spec() with
            {
                Config = new Diffusion.Runtime.Onnx.DiffusionConfig { UseKarrasSigmas = true }
            }));
        var plainModel = Path.Combine(dir, "plain.onnx");
        File.WriteAllBytes(plainModel, Diffusion.ReferenceModels.GaussianModel.Build(Fixtures.Spec()));
        float[] Sample(string model, params string[] extra)
        {
            var path = Path.Combine(dir, $"{Guid.NewGuid():N}.npy");
            var (code, _,
                error) = Run(["sample", "--model", model, "--sampler", "dpm++2m", "-n", "2", "--steps", "6", "--out",
                    path, .. extra]);
            Assert.True(code == 0, error);
            return Npy.Load(path).Data;
        }
        var karras = Sample(plainModel, "--karras");
        var trailing = Sample(plainModel);
        Assert.NotEqual(karras, trailing); // 6 steps: the grids differ visibly
        Assert.Equal(karras, Sample(karrasModel));
        Assert.Equal(karras, Sample(plainModel, "--karras", "true"));
        Assert.Equal(trailing, Sample(karrasModel, "--karras", "false"));
        Assert.Contains("Karras σ (use_karras_sigmas)", Run("info", "--model", karrasModel).Out);
        Assert.Contains("timesteps, trailing spacing", Run("info", "--model", plainModel).Out);
    }

    [Fact]
    public void Info_and_samplers_describe_what_is_there()
    {
        var (code, output, _) = Run("info");
        Assert.Equal(0, code);
        Assert.Contains("class_labels", output);
        Assert.Contains("red, green, blue, yellow", output);
        (code, output, _) = Run("samplers");
        Assert.Equal(0, code);
        foreach (var entry in Diffusion.Runtime.Samplers.SamplerRegistry.All) Assert.Contains(entry.Name, output);
    }

    [Fact]
    public void Bench_runtime_times_a_second_graph_beside_the_first_with_gflops_and_where_the_time_goes()
    {
        var gaussian = Cli.Commands.ModelArguments.GaussianModelPath;
        var copy = Path.Combine(Fixtures.TempFolder(), "copy.onnx");
        File.Copy(gaussian, copy);
        var (code, output, error) = Run("bench-runtime", "--model", gaussian, "--versus", copy, "--batches", "1,4",
            "--samplers", "ddim", "--steps", "2", "--repeat", "1", "--profile");
        Assert.True(code == 0, error);
        var flat = new string(output.Where(c => !char.IsWhiteSpace(c) && c is not ('│' or '─' or '┼' or '├' or '┤'
            or '┌' or '┐' or '└' or '┘' or '┬' or '┴')).ToArray());
        Assert.Contains("versus1", flat);
        Assert.Contains("0.0e+0", flat); // the same graph: outputs equal
        Assert.Contains("kernelsaswritten", flat);
        Assert.Contains("FMApeakofthisCPU", flat);
        if (Environment.ProcessorCount > 1) Assert.Contains("GFLOP/swhereonealonereaches", flat); // cores or not
        Assert.Contains("versus1,batch4:kernels", flat); // a breakdown per model and batch
        Assert.Contains("optype", flat);
        Assert.Empty(Directory.GetFiles(".", "onnxruntime_profile_*")); // the profiles are read and removed
        var (bad, _, badError) = Run("bench-runtime", "--versus", gaussian, "--batches", "1");
        Assert.Equal(2, bad);
        Assert.Contains("error: --versus:", badError);
        Assert.Contains(gaussian, badError);
    }

    [Fact]
    public void The_native_library_is_the_packages_beside_the_app_and_devices_says_which_build_it_is()
    {
        var (code, output, error) = RunChild("info");
        Assert.True(code == 0, error);
        Assert.Contains(Path.Combine(AppContext.BaseDirectory, "libonnxruntime.so"), output);

        (code, output, error) = RunChild("devices");
        Assert.True(code == 0, error);
        Assert.Contains(":Microsoft.ML.OnnxRuntime(CPU),", output); // (read without its spaces)
        Assert.Contains("cuda:notinthisbuild(buildwith-p:OrtGpu=true", output);
    }

    private static (int Code, string Out, string Err) RunChild(string command)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "diffusion.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { cli, command }) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        // Tables wrap long paths inside their cells: read the output without the tables' lines and spaces.
        var flat = new string(output.Result.Where(c => !char.IsWhiteSpace(c)
            && c is not ('│' or '─' or '┼' or '├' or '┤' or '┌' or '┐' or '└' or '┘' or '┬' or '┴')).ToArray());
        return (process.ExitCode, flat, error);
    }
}
