using System.Diagnostics;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Cli.Tests;

/// <summary>The README's command lines, run as written, in order, in a scratch folder (as a newcomer would).</summary>
public class ReadmeTests
{
    private static string Repo => TestFolders.Repository;

    /// <summary>The ./diffusion lines of the README's "Command line" block, without their comments.</summary>
    private static List<string> CommandLines()
    {
        var readme = File.ReadAllText(Path.Combine(Repo, "README.md"));
        int start = readme.IndexOf("## Command line", StringComparison.Ordinal);
        int block = readme.IndexOf("```bash\n", start, StringComparison.Ordinal) + "```bash\n".Length;
        int end = readme.IndexOf("```", block, StringComparison.Ordinal);
        return readme[block..end].Split('\n')
            .Where(l => l.StartsWith("./diffusion ", StringComparison.Ordinal))
            .Select(l => l.Split(" #")[0].Trim())
            .ToList();
    }

    [Fact]
    public async Task Every_command_line_of_the_readme_runs_as_written()
    {
        var lines = CommandLines();
        Assert.True(lines.Count >= 15, $"only {lines.Count} command lines found");
        var folder = TestFolders.Create("readme");
        File.CreateSymbolicLink(Path.Combine(folder, "models"), Path.Combine(Repo, "models"));
        var cli = Path.Combine(AppContext.BaseDirectory, "diffusion.dll");
        foreach (var line in lines)
        {
            // words as bash splits them here: on spaces, a "double-quoted" run being one word
            var args = System.Text.RegularExpressions.Regex.Matches(line["./diffusion ".Length..], "\"([^\"]*)\"|(\\S+)")
                .Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value).ToArray();
            var start = new ProcessStartInfo("dotnet")
            {
                WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true,
            };
            start.ArgumentList.Add(cli);
            foreach (var a in args) start.ArgumentList.Add(a);
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            if (args.Contains("--device"))
            {
                // The README says this one needs a GPU build: here it must fail cleanly, with one line.
                Assert.True(process.ExitCode == 1, $"{line}: exit {process.ExitCode}");
                Assert.Single(stderr.Trim().Split('\n'));
                continue;
            }
            Assert.True(process.ExitCode == 0, $"{line}\n→ exit {process.ExitCode}: {stderr}{await stdout}");
        }
        // What the lines were to make, made.
        foreach (var file in new[]
        {
            "dress.png", "grid.png", "sneakers.png", "x.npy", "xT.npy", "from-noise.png", "coat.png", "top.png",
                "filled.png", "morph.png", "g.onnx", "g.png", "sd-tiny/model_index.json", "cat.png", "dog.png",
                "plots/beta.svg", "report/report.md",
        })
            Assert.True(File.Exists(Path.Combine(folder, file)), $"{file} was not written");
        Assert.Equal(8, Directory.GetFiles(Path.Combine(folder, "images")).Length);
        // 28×28 shown 5×
        Assert.Equal((140, 140),
            (ImageFile.Read(Path.Combine(folder, "dress.png")).Width,
                ImageFile.Read(Path.Combine(folder, "dress.png")).Height));
        Assert.False(File.Exists(Path.Combine(folder, "gpu.png")));
    }

    [Fact]
    public async Task Noise_writes_the_x_T_that_sample_draws_and_mask_the_region_inpaint_repaints()
    {
        var folder = TestFolders.Create("readme-inputs");
        var cli = new[] { "--model", Diffusion.Cli.Commands.ModelArguments.GaussianModelPath };
        static Task<int> Run(params string[] args) => Program.Run(args, new StringWriter(), new StringWriter());
        Assert.Equal(0,
            await Run(["noise", "-n", "3", "--seed", "9", "--out", Path.Combine(folder, "xT.npy"), .. cli]));
        Assert.Equal(0,
            await Run(["sample", "-n", "3", "--seed", "9", "--class", "red", "--steps", "5", "--out",
                Path.Combine(folder, "a.npy"), .. cli]));
        Assert.Equal(0,
            await Run(["sample", "--init-noise", Path.Combine(folder, "xT.npy"), "--seed", "1", "--class", "red",
                "--steps", "5", "--out", Path.Combine(folder, "b.npy"), .. cli]));
        Assert.Equal(Npy.Load(Path.Combine(folder, "a.npy")).Data, Npy.Load(Path.Combine(folder, "b.npy")).Data);

        Assert.Equal(0, await Run(["mask", "--repaint", "4,2,10,6", "--out", Path.Combine(folder, "m.png"), .. cli]));
        var mask = ImageFile.Read(Path.Combine(folder, "m.png"));
        Assert.Equal((32, 32, 1), (mask.Width, mask.Height, mask.Channels));
        Assert.Equal(60 * 255, mask.Pixels.Sum(b => (int)b));
        Assert.Equal(255, mask.Pixels[2 * 32 + 4]);
        Assert.Equal(0, mask.Pixels[2 * 32 + 14]);
        Assert.Equal(2,
            await Run(["mask", "--repaint", "30,30,5,5", "--out", Path.Combine(folder, "bad.png"), .. cli]));
    }
}
