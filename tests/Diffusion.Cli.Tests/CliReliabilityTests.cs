using System.Diagnostics;
using Diffusion.Cli;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Cli.Tests;

/// <summary>
/// Hostile inputs and faults: every case is one clear line and a handled exit code (1 or 2), never a stack trace,
/// memory bounded by what the request needs, and nothing half-written.
/// </summary>
public class CliReliabilityTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        if (args[0] is "sample" or "img2img" or "inpaint" or "interpolate" && !args.Contains("--model"))
            args = [.. args, "--model", Diffusion.Cli.Commands.ModelArguments.GaussianModelPath];
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }

    private static void AssertHandled((int Code, string Out, string Err) r, int expectedCode, string expected,
        string what)
    {
        Assert.True(r.Code == expectedCode, $"{what}: exit {r.Code}, expected {expectedCode}: {r.Err}");
        Assert.Contains(expected, r.Err);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.DoesNotContain("internal error", r.Err);
        Assert.True(r.Err.Trim().Split('\n').Length <= 2,
            $"{what}: more than an error line and a help pointer: {r.Err}");
    }

    [Fact]
    public void A_png_bomb_is_refused_by_img2img_before_decoding()
    {
        var dir = Fixtures.TempFolder();
        File.WriteAllBytes(Path.Combine(dir, "big.png"), HostileFiles.Png("46000² gray bomb"));
        AssertHandled(Run("img2img", "--image", Path.Combine(dir, "big.png"), "--out", Path.Combine(dir, "x.png")), 1,
            "is 46000×46000 = 2,116,000,000 pixels; image inputs are limited to 16,777,216 pixels",
                "img2img with a bomb");
        Assert.False(File.Exists(Path.Combine(dir, "x.png")));
    }

    // ---- sizes from the command line ----

    [Fact]
    public void Overflowing_counts_and_sizes_are_usage_errors_before_any_work()
    {
        var dir = Fixtures.TempFolder();
        var image = Path.Combine(dir, "one.png");
        Assert.Equal(0, Run("sample", "--class", "red", "-n", "1", "--steps", "2", "--out", image).Code);
        var watch = Stopwatch.StartNew();
        (string[] Args, string Expected)[] cases =
        [
            (["img2img", "--image", image, "--count", "-1", "--out", Path.Combine(dir, "a.png")], "--count"),
            (["sample", "--karras", "--steps", "2147483647", "--out", Path.Combine(dir, "b.png")], "--steps"),
            (["interpolate", "--from", "1", "--to", "2", "--frames", "2000000000", "--out", Path.Combine(dir, "c.png")],
                "--frames"),
            (["eval", "--count", "-1"], "--count"),
            (["bench", "--count", "0", "--out", Path.Combine(dir, "bench")], "--count"),
            (["sample", "--count", "9000000", "--steps", "2", "--out", Path.Combine(dir, "d.npy")], "2³¹"),
            (["sample", "--threads", "100000", "--out", Path.Combine(dir, "e.png")],
                "error: --threads: 100000: expected 0"),
            (["sample", "--sampler", "dpm++2m", "--eta", "0.5", "--out", Path.Combine(dir, "f.png")],
                "error: --eta: does not apply to the dpm++2m sampler"),
            (["sample", "--sampler", "ddim", "--snr", "0.2", "--out", Path.Combine(dir, "g.png")],
                "error: --snr: does not apply"),
            (["sample", "--cuda-option", "gpu_mem_limit=1", "--out", Path.Combine(dir, "h.png")],
                "error: --cuda-option: applies only to a CUDA device"),
            (["sample", "--columns", "-3", "--out", Path.Combine(dir, "i.png")], "--columns"),
            (["schedules", "--timesteps", "2000000000", "--out", Path.Combine(dir, "s")], "--timesteps"),
            (["gaussian-model", "--size", "50000", "--out", Path.Combine(dir, "g.onnx")], "--size"),
            (["bench-runtime", "--batches", "1,x"], "error: --batches: '1,x'"),
        ];
        foreach (var (args, expected) in cases) AssertHandled(Run(args), 2, expected, string.Join(' ', args));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30),
            $"the refusals took {watch.Elapsed.TotalSeconds:0} s: something sampled first");
        Assert.Equal(["one.png"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        // A huge --columns is clamped to the image count, not a 2³¹-pixel-wide grid.
        var wide = Path.Combine(dir, "wide.png");
        Assert.Equal(0,
            Run("sample", "-n", "3", "--steps", "2", "--columns", "100000000", "--scale", "1", "--out", wide).Code);
        Assert.Equal(3 * 32 + 4 * 2, ImageFile.Read(wide).Width);
    }

    [Fact]
    public void Hostile_configs_and_unwritable_outputs_are_failures_with_one_line()
    {
        var dir = Fixtures.TempFolder();
        var config = Path.Combine(dir, "scheduler_config.json");
        File.WriteAllText(config, """{"sample_size": 50000, "in_channels": 3}""");
        AssertHandled(Run("sample", "--config", config, "--out", Path.Combine(dir, "a.png")), 1,
            "sample_size must be two sides in 1…16384", "sample_size 50000");
        File.WriteAllText(config, """{"beta_start": 0.02, "beta_end": 0.0001}""");
        AssertHandled(Run("sample", "--config", config, "--out", Path.Combine(dir, "a.png")), 1,
            "beta_start (0.02) is above beta_end", "beta_start > beta_end");
        File.WriteAllText(config, """{"num_train_timesteps": 2000000000}""");
        AssertHandled(Run("sample", "--config", config, "--out", Path.Combine(dir, "a.png")), 1,
            "num_train_timesteps must lie in", "huge T");
        var file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "");
        AssertHandled(Run("schedules", "--out", Path.Combine(file, "plots")), 1, "cannot create or write the folder",
            "schedules under a file");
        AssertHandled(Run("bench", "--out", Path.Combine(file, "report")), 1, "cannot create or write the folder",
            "bench under a file");
        AssertHandled(Run("sample", "--out", Path.Combine(file, "x.png")), 1, "cannot write into folder",
            "sample under a file");
        Assert.Equal(["a-file", "scheduler_config.json"],
            Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void An_explicit_config_overrides_the_models_metadata_and_info_says_so()
    {
        var dir = Fixtures.TempFolder();
        var config = Path.Combine(dir, "override.json");
        File.WriteAllText(config, """{"prediction_type": "sample", "sample_size": 32, "in_channels": 3, "num_classes": 4, "class_names": ["red", "green", "blue", "yellow"]}""");
        var (code, output, error) = Run("info", "--model", Diffusion.Cli.Commands.ModelArguments.GaussianModelPath,
            "--config", config);
        Assert.True(code == 0, error);
        var flat = string.Concat(output.Where(c => !char.IsWhiteSpace(c) && c != '│'));
        Assert.Contains($"--config{config}(overridesthemodel's'diffusion.config'metadata)", flat);
        Assert.Contains("prediction_typesample", flat);
    }

    // ---- outputs: nothing half-written, nothing mixed ----

    [Fact]
    public void A_folder_output_replaces_an_earlier_run_whole_and_refuses_foreign_files()
    {
        var dir = Fixtures.TempFolder();
        var folder = Path.Combine(dir, "imgs") + "/";
        Assert.Equal(0, Run("sample", "-n", "5", "--steps", "2", "--out", folder).Code);
        Assert.Equal(5, Directory.GetFiles(folder).Length);
        Assert.Equal(0, Run("sample", "-n", "2", "--steps", "2", "--out", folder).Code);
        // no stale 0002…0004
        Assert.Equal(["0000.png", "0001.png"], Directory.GetFiles(folder).Select(Path.GetFileName).Order());
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "mine");
        AssertHandled(Run("sample", "-n", "2", "--steps", "2", "--out", folder), 2, "notes.txt",
            "foreign file in the output folder");
        // no temporary folders left
        Assert.Equal(["imgs"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        // A killed run's temporary folder (our name and marker, its process gone) is removed by the next run; folders
        // that merely look like one — the old naming, a name without our marker — are the user's and stay.
        var stale = Path.Combine(dir, $".imgs~diffusion-tmp.{int.MaxValue - 1}.{new string('b', 32)}");
        Directory.CreateDirectory(stale);
        File.WriteAllText(Path.Combine(stale, TemporaryFiles.Marker), new string('b', 32));
        string[] users =
        [
            $"imgs.tmp-{int.MaxValue - 1}-abc", "imgs.old-2023-archive", "imgs.tmp-1999",
            $".imgs~diffusion-old.{int.MaxValue - 1}.{new string('c', 32)}",
        ];
        foreach (var user in users)
        {
            Directory.CreateDirectory(Path.Combine(dir, user));
            File.WriteAllText(Path.Combine(dir, user, "photo.txt"), "x");
        }
        File.Delete(Path.Combine(folder, "notes.txt"));
        Assert.Equal(0, Run("sample", "-n", "1", "--steps", "2", "--out", folder).Code);
        Assert.False(Directory.Exists(stale));
        Assert.All(users, u => Assert.True(File.Exists(Path.Combine(dir, u, "photo.txt")), u));
    }

    [Fact]
    public async Task A_file_put_into_the_output_folder_while_sampling_is_never_deleted()
    {
        var dir = Fixtures.TempFolder();
        var folder = Path.Combine(dir, "imgs");
        Assert.Equal(0, Run("sample", "-n", "2", "--steps", "2", "--out", folder + "/").Code);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var run = Task.Run(() => Run("sample", "-n", "64", "--steps", "1000", "--sampler", "ddpm", "--out",
            folder + "/"));
        // while the run samples (past its start-up checks, seconds before it writes), a user drops a file into the
        // output folder
        await Task.Delay(500);
        File.WriteAllText(Path.Combine(folder, "mine.txt"), "keep me");
        var (code, _, error) = await run;
        Assert.True(watch.Elapsed > TimeSpan.FromSeconds(1), "the run ended too soon to have sampled past the drop");
        Assert.Equal(1, code);
        Assert.Contains("now holds 'mine.txt', which this command did not write", error);
        Assert.Equal("keep me", File.ReadAllText(Path.Combine(folder, "mine.txt")));
        Assert.Equal(["0000.png", "0001.png", "mine.txt"],
            Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(["imgs"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName)); // no temporary left
    }

    [Fact]
    public void A_full_disk_leaves_no_partial_output()
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "diffusion.dll");
        var model = Diffusion.Cli.Commands.ModelArguments.GaussianModelPath;
        // 64 images of 32×32 RGB noise-like samples (≈ 3 KB each as PNG) do not fit a 96 KiB tmpfs.
        var script = $"""
            set -e
            disk="$(mktemp -d)"
            mount -t tmpfs -o size=96k tmpfs "$disk"
            set +e
            dotnet '{cli}' sample --model '{model}' -n 64 --steps 2 --sampler ddpm --out "$disk/imgs/" 2>&1; echo "exit=$?"
            dotnet '{cli}' sample --model '{model}' -n 64 --steps 2 --sampler ddpm --out "$disk/grid.png" 2>&1; echo "exit=$?"
            echo "left: $(ls -A "$disk" | tr '\n' ' ')"
            umount "$disk"; rmdir "$disk"
            """;
        var (ok, output) = TinyDisk.RunScript(script);
        Assert.True(ok, $"no tmpfs could be mounted here (needs root or user namespaces): {output}");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Count(l => l == "exit=1"));
        Assert.Equal(2,
            lines.Count(l => l.StartsWith("error: ", StringComparison.Ordinal)
                && l.Contains("No space left on device")));
        Assert.DoesNotContain("   at ", output);
        Assert.Contains("left: \n", output + "\n"); // nothing at all: no imgs/, no temporaries, no grid
    }
}
