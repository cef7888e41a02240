using System.Diagnostics;
using Diffusion.Cli.Commands;
using Diffusion.Runtime;

namespace Diffusion.Cli.Tests;

/// <summary>
/// Generation across processes (<c>--processes N</c>: N ranks under mpirun, each its share of the images): the images
/// are byte for byte those of one process, whatever the batches and the ranks; eval's numbers are one process's; a
/// failure is one line.
/// </summary>
public class CliProcessesTests
{
    [Fact]
    public void Shares_are_contiguous_runs_of_whole_batches_that_cover_every_image_once()
    {
        foreach (var (count, batch, ranks) in new[] { (10, 3, 2), (10, 3, 4), (7, 7, 1), (100, 16, 3), (5, 1, 5) })
        {
            int next = 0, batches = (count + batch - 1) / batch;
            for (int r = 0; r < ranks; r++)
            {
                var (first, n) = Ranks.Share(count, batch, ranks, r);
                Assert.Equal(next, first);
                Assert.Equal(0, first % batch); // the micro-batches fall where one process's fall
                Assert.True(n > 0, $"rank {r} of {ranks} has no images of {count}");
                int mine = (n + batch - 1) / batch;
                Assert.InRange(mine, batches / ranks, (batches + ranks - 1) / ranks);
                next = first + n;
            }
            Assert.Equal(count, next);
        }
        Assert.Equal("--processes",
            Assert.Throws<DiffusionArgumentException>(() => Ranks.Share(3, 1, 4, 0)).Parameter);
        Assert.Contains("give a smaller --batch",
            Assert.Throws<DiffusionArgumentException>(() => Ranks.Share(8, 8, 2, 0)).Message);
    }

    [Fact]
    public void Two_processes_make_the_images_of_one_byte_for_byte()
    {
        var dir = TestFolders.Create("processes");
        // 11 images in batches of 3 (the last one short), classes cycled: 2 ranks get batches 0–1 and 2–3.
        string[] sample = ["sample", "-n", "11", "--batch", "3", "--steps", "6", "--sampler", "dpm++2m"];
        Assert.Equal(0, Cli([.. sample, "--out", Path.Combine(dir, "one.npy")]).Code);
        var (code, output, error) = Cli([.. sample, "--out", Path.Combine(dir, "two.npy"), "--processes", "2"]);
        Assert.True(code == 0, error);
        Assert.Single(output.Trim().Split('\n')); // rank 0 speaks for the run
        Assert.StartsWith("wrote ", output);
        Assert.Contains("11 images", output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "one.npy")), File.ReadAllBytes(Path.Combine(dir, "two.npy")));

        // An edit with per-image inputs: img2img of the first run's images, each rank its slice of them.
        string[] edit = ["img2img", "--image", Path.Combine(dir, "one.npy"), "--strength", "0.5", "--steps", "6",
            "--batch", "4", "--seed", "3"];
        Assert.Equal(0, Cli([.. edit, "--out", Path.Combine(dir, "edit-one.npy")]).Code);
        (code, _, error) = Cli([.. edit, "--out", Path.Combine(dir, "edit-two.npy"), "--processes", "3"]);
        Assert.True(code == 0, error);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "edit-one.npy")),
            File.ReadAllBytes(Path.Combine(dir, "edit-two.npy")));
    }

    [Fact]
    public void Eval_across_processes_reports_the_numbers_of_one()
    {
        string[] eval = ["eval", "--count", "60", "--steps", "4", "--batch", "20"];
        var (code, one, error) = Cli(eval);
        Assert.True(code == 0, error);
        (code, var two, error) = Cli([.. eval, "--processes", "2"]);
        Assert.True(code == 0, error);
        static string[] Metrics(string table) => [.. table.Split('\n').Where(l => !l.Contains("ms / image"))];
        Assert.Equal(Metrics(one), Metrics(two));
        Assert.Contains("Fréchet distance", two);
    }

    [Fact]
    public void A_failure_on_any_rank_is_one_line_and_nothing_is_written()
    {
        var dir = TestFolders.Create("processes-bad");
        var target = Path.Combine(dir, "x.png");
        foreach (var (args, expected, exit) in new (string[], string, int)[]
        {
            (["sample", "-n", "3", "--batch", "1", "--processes", "4"], "4 processes for 3 images", 2),
            (["sample", "-n", "4", "--batch", "4", "--processes", "2"], "give a smaller --batch", 2),
            (["sample", "-n", "4", "--batch", "2", "--processes", "2", "--device", "cuda"], "-p:OrtGpu=true", 1),
            (["sample", "--model", Path.Combine(dir, "none.onnx"), "--processes", "2"], "does not exist", 1),
            (["eval", "--count", "4", "--batch", "2", "--processes", "2", "--classifier", Path.Combine(dir, "c.onnx")],
                "--classifier", 1),
            (["sample", "--processes", "0"], "--processes: expected 1…1024, got 0", 2),
        })
        {
            var (code, _, error) = Cli(args[0] == "eval" ? args : [.. args, "--out", target]);
            Assert.True(code == exit, $"{string.Join(' ', args)} → {code}, expected {exit}: {error}");
            Assert.Single(error.Trim().Split('\n'));
            Assert.Contains(expected, error);
            Assert.False(File.Exists(target));
        }
    }

    /// <summary>The CLI as its own process (mpirun starts it again for every rank).</summary>
    private static (int Code, string Out, string Err) Cli(string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "diffusion.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{string.Join(' ', args)} still ran after 3 minutes: {output.Result}{error.Result}");
        }
        return (process.ExitCode, output.Result, error.Result);
    }
}
