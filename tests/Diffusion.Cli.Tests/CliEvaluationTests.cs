using Diffusion.Cli;
using Diffusion.Cli.Commands;
using Diffusion.ReferenceModels;
using Diffusion.Runtime.Onnx;
using System.Text.RegularExpressions;

namespace Diffusion.Cli.Tests;

/// <summary>eval, bench and schedules through the command line.</summary>
public class CliEvaluationTests
{
    [Fact]
    public async Task Bench_writes_the_report_with_measured_nfe()
    {
        var dir = Fixtures.TempFolder();
        var modelPath = Path.Combine(dir, "g.onnx");
        File.WriteAllBytes(modelPath, GaussianModel.Build(Fixtures.Spec() with
        {
            Height = 28, Width = 28,
            ClassMeans = Enumerable.Range(0, 11).Select(c => new[] { c / 10f - 0.5f }).ToArray(),
            Config = new DiffusionConfig { NumClasses = 10 },
        }));
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await Program.Run(["bench", "--model", modelPath, "--out", Path.Combine(dir, "report"), "--samplers", "ddim,heun,rk45",
            "--nfe", "4,10", "--full", "none", "--rk45-tolerances", "0.1", "--count", "40", "--headline-count", "100", "--batch", "20"], output, error);
        Assert.True(code == 0, error.ToString());
        var csv = File.ReadAllLines(Path.Combine(dir, "report", "results.csv"));
        Assert.Equal(1 + 2 + 2 + 1 + 1, csv.Length); // + the best row within 10 NFE again at 100 images (no DDPM here)
        Assert.Matches(@"^(ddim|heun),\d+,,\d+,100,[\d.]+,[\d.]+,-?[\d.]+,[\d.]+,-?[\d.]+,[\d.]+,[\d.]+,1$", csv[6]);
        Assert.StartsWith("heun,2,,3,", csv[3]); // 4 NFE → 2 Heun steps → 3 evaluations
        Assert.StartsWith("heun,5,,9,", csv[4]); // 10 NFE → 5 Heun steps → 2·5 − 1 evaluations
        Assert.StartsWith("rk45,", csv[5]);
        Assert.Contains(",0.1,", csv[5]);
        Assert.StartsWith("<svg", File.ReadAllText(Path.Combine(dir, "report", "fd_vs_nfe.svg")));
        var report = File.ReadAllText(Path.Combine(dir, "report", "report.md"));
        Assert.Contains("| ddim | 10 steps | 10 |", report);
        Assert.Contains("| rk45 | tol 1e-1 |", report);
        Assert.Contains($"Made with `./diffusion bench --model {modelPath} --out", report);
        Assert.Contains("| NFE ≤ | best sampler |", report);
        Assert.Contains("## Headline rows, 100 images each", report);
        Assert.Contains("## All runs, 40 images each", report);
        Assert.Contains("| FD floor | KID | KID floor |", report);
        Assert.Matches(@"generated for \(real images score [\d.]+ %: the classifier on 40 labelled test images, mean over classes\);", report);
        Assert.Matches(@"\n\| 4 \| (ddim|heun) \([34] NFE\) \|", report); // only rows within the budget compete
        Assert.Matches(@"\n\| 10 \| \w+ \(\d+ NFE\) \|", report);
        Assert.Equal(2, await Program.Run(["bench", "--model", modelPath, "--out", Path.Combine(dir, "r2"), "--rk45-tolerances", "tight"], output, error));
        Assert.Contains("--rk45-tolerances 'tight' is not a positive number", error.ToString());

        code = await Program.Run(["eval", "--model", modelPath, "--count", "20", "--steps", "5"], output, error);
        Assert.True(code == 0, error.ToString());
        Assert.Contains("Fréchet distance", output.ToString());
        Assert.Contains("noise floor", output.ToString());
        Assert.Contains("kernel inception distance", output.ToString());
        output.GetStringBuilder().Clear();
        code = await Program.Run(["eval", "--model", modelPath, "--count", "20", "--steps", "5", "--seeds", "3"], output, error);
        Assert.True(code == 0, error.ToString());
        var text = Regex.Replace(output.ToString(), @"[│\s]+", " "); // the table wraps long cells
        Assert.Matches(@"Fréchet distance [\d.]+ ± [\d.]+ \(mean ± sd over 3 seeds; 20 generated vs 20 reference\) each seed [\d.]+, [\d.]+, [\d.]+ noise floor [\d.]+ ± [\d.]+ \(3 disjoint samples of 20 ", text);
        Assert.Matches(@"class accuracy [\d.]+ % ± [\d.]+ % \(real images: [\d.]+ %, the classifier on 20 labelled reference images\)", text);
        Assert.Matches(@" [\d.]+ % \(real: [\d.]+ %\) ", text);
        Assert.Equal(2, await Program.Run(["eval", "--model", modelPath, "--seeds", "0"], output, error));
        Assert.Contains("--seeds must be a number of sampling seeds from 1 to 100, got 0.", error.ToString());
        Assert.Equal(1, await Program.Run(["eval", "--count", "20", "--model", ModelArguments.GaussianModelPath], output, error)); // RGB 32×32 does not fit the classifier
        Assert.Contains("the model makes 3072 values per image", error.ToString());
    }

    [Fact]
    public async Task Schedules_writes_four_svg_plots()
    {
        var dir = Fixtures.TempFolder();
        Assert.Equal(0, await Program.Run(["schedules", "--out", dir], new StringWriter(), new StringWriter()));
        foreach (var file in new[] { "beta.svg", "alpha_bar.svg", "sigma_vp.svg", "log_snr.svg" })
        {
            var svg = File.ReadAllText(Path.Combine(dir, file));
            Assert.Contains("<polyline", svg);
            Assert.Contains("cosine", svg);
        }
    }
}
