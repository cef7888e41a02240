using Diffusion.Cli;
using Diffusion.Cli.Commands;
using Diffusion.ReferenceModels;
using Diffusion.Runtime.Onnx;
using System.Text.RegularExpressions;

namespace Diffusion.Cli.Tests;

/// <summary>eval, bench and schedules through the command line.</summary>
public class CliEvaluationTests
{
    /// <summary>
    /// A closed-form Gaussian model of 10 grey 28×28 classes (the classifier's input size), in a new folder.
    /// </summary>
    private static (string Dir, string ModelPath) ClassConditionalModel()
    {
        var dir = Fixtures.TempFolder();
        var modelPath = Path.Combine(dir, "g.onnx");
        File.WriteAllBytes(modelPath, GaussianModel.Build(Fixtures.Spec() with
        {
            Height = 28, Width = 28,
            ClassMeans = Enumerable.Range(0, 11).Select(c => new[] { c / 10f - 0.5f }).ToArray(),
            Config = new DiffusionConfig { NumClasses = 10 },
        }));
        return (dir, modelPath);
    }

    [Fact]
    public async Task Bench_writes_the_report_with_measured_nfe()
    {
        var (dir, modelPath) = ClassConditionalModel();
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await Program.Run(["bench", "--model", modelPath, "--out", Path.Combine(dir, "report"), "--samplers",
            "ddim,heun,rk45",
            "--nfe", "4,10", "--full", "none", "--rk45-tolerances", "0.1", "--count", "40", "--headline-count", "100",
                "--batch", "20"], output, error);
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
        Assert.Equal(2,
            await Program.Run(["bench", "--model", modelPath, "--out", Path.Combine(dir, "r2"), "--rk45-tolerances",
                "tight"], output, error));
        Assert.Contains("error: --rk45-tolerances: 'tight' is not a positive number", error.ToString());

        code = await Program.Run(["eval", "--model", modelPath, "--count", "20", "--steps", "5"], output, error);
        Assert.True(code == 0, error.ToString());
        Assert.Contains("Fréchet distance", output.ToString());
        Assert.Contains("noise floor", output.ToString());
        Assert.Contains("kernel inception distance", output.ToString());
        output.GetStringBuilder().Clear();
        code = await Program.Run(["eval", "--model", modelPath, "--count", "20", "--steps", "5", "--seeds", "3"],
            output, error);
        Assert.True(code == 0, error.ToString());
        var text = Regex.Replace(output.ToString(), @"[│\s]+", " "); // the table wraps long cells
        Assert.Matches(@"Fréchet distance [\d.]+ ± [\d.]+ \(mean ± sd over 3 seeds; 20 generated vs 20 reference\) each seed [\d.]+, [\d.]+, [\d.]+ noise floor [\d.]+ ± [\d.]+ \(3 disjoint samples of 20 ", text);
        Assert.Matches(@"class accuracy [\d.]+ % ± [\d.]+ % \(real images: [\d.]+ %, the classifier on 20 labelled reference images\)", text);
        Assert.Matches(@" [\d.]+ % \(real: [\d.]+ %\) ", text);
        Assert.Equal(2, await Program.Run(["eval", "--model", modelPath, "--seeds", "0"], output, error));
        Assert.Contains("error: --seeds: must be a number of sampling seeds from 1 to 100, got 0.", error.ToString());
        // A missing classifier: the library names the parameter, the command line says how to train one.
        Assert.Equal(1, await Program.Run(["eval", "--model", modelPath, "--classifier", "/nowhere/c.onnx"], output, error));
        Assert.Contains("error: --classifier: '/nowhere/c.onnx' does not exist. Train one with ./diffusion train-classifier",
            error.ToString());
        // RGB 32×32 does not fit the classifier
        Assert.Equal(1,
            await Program.Run(["eval", "--count", "20", "--model", ModelArguments.GaussianModelPath], output, error));
        Assert.Contains("the model makes 3072 values per image", error.ToString());
    }

    [Fact]
    public async Task Bench_resumes_from_its_journal_and_refuses_another_setup()
    {
        var (dir, modelPath) = ClassConditionalModel();
        var report = Path.Combine(dir, "report");
        var journal = Path.Combine(report, "journal.jsonl");
        string[] args = ["bench", "--model", modelPath, "--out", report, "--nfe", "4,10", "--full", "none", "--count",
            "40", "--headline-count", "100", "--batch", "20"];
        async Task<(int Code, string Out, string Error)> Bench(params string[] extra)
        {
            var (output, error) = (new StringWriter(), new StringWriter());
            int code = await Program.Run([.. args, .. extra.Contains("--samplers") ? extra
                : [.. extra, "--samplers", "ddim,heun"]], output, error);
            return (code, output.ToString(), error.ToString());
        }
        // Quality columns only: a row measured again has the same images (same seed) but not the same milliseconds.
        string[] Quality() =>
            File.ReadAllLines(Path.Combine(report, "results.csv")).Select(l =>
                string.Join(',', l.Split(',')[..11])).ToArray();

        var first = await Bench();
        Assert.True(first.Code == 0, first.Error);
        var measured = Quality();
        var lines = File.ReadAllLines(journal);
        Assert.Equal(1 + 4 + 1, lines.Length); // setup, 4 sweep rows, the best within 10 NFE again at 100 images
        Assert.Contains("\"sampler\":\"heun\"", lines[3]);
        var csv = File.ReadAllText(Path.Combine(report, "results.csv"));

        // All rows kept: nothing is measured again, the report is the same.
        var all = await Bench("--resume");
        Assert.True(all.Code == 0, all.Error);
        Assert.Contains($"resuming: 5 rows in {journal} (", all.Error);
        Assert.Equal(5, Regex.Matches(all.Out, @"\(kept\)").Count);
        Assert.Equal(csv, File.ReadAllText(Path.Combine(report, "results.csv")));
        Assert.Contains("in 2 sittings (resumed with `--resume`", File.ReadAllText(Path.Combine(report, "report.md")));
        // the command shown is the plain one
        Assert.DoesNotContain("--resume --", File.ReadAllText(Path.Combine(report, "report.md")));

        // Stopped mid-way, the last line torn: the torn line is dropped, the rest measured again to the same numbers.
        File.WriteAllText(journal, string.Join('\n', lines[..3]) + "\n" + lines[3][..(lines[3].Length / 2)]);
        var torn = await Bench("--resume");
        Assert.True(torn.Code == 0, torn.Error);
        Assert.Contains("resuming: 2 rows", torn.Error);
        Assert.Equal(2, Regex.Matches(torn.Out, @"\(kept\)").Count);
        Assert.Equal(measured, Quality());
        var resumed = File.ReadAllLines(journal);
        Assert.Equal(6, resumed.Length);
        // the kept rows were sitting 1's; every line whole again
        Assert.All(resumed[3..], l => Assert.Contains("\"sitting\":2", l));

        // Another setup, a damaged journal, a hostile one: one line each, and the journal is left as it was.
        var other = await Bench("--seed", "1", "--resume");
        Assert.Equal(2, other.Code);
        Assert.StartsWith("error: --resume: ", other.Error);
        Assert.Contains("was measured with another setup (seed 0 → 1); start over instead of resuming.", other.Error);
        Assert.Single(other.Error.Trim().Split('\n'));
        File.WriteAllLines(journal, [resumed[0], "not json", .. resumed[2..]]);
        var damaged = await Bench("--resume");
        Assert.Equal(1, damaged.Code);
        Assert.Contains($"'{journal}' line 2 is not valid JSON", damaged.Error);
        File.WriteAllLines(journal, [resumed[0], "{\"sitting\":1}"]);
        Assert.Contains("line 2 is not a benchmark row (a field is missing)", (await Bench("--resume")).Error);
        // A row that parses but holds no measurement ("result": {} reads as FD 0, 0 %) is damage too.
        foreach (var (result, why) in new[]
        {
            ("{}", "no sampler in its result"), ("""{"sampler":"ddim","count":-4}""", "its result counts -4 images"),
        })
        {
            var row = System.Text.Json.Nodes.JsonNode.Parse(resumed[1])!;
            row["result"] = System.Text.Json.Nodes.JsonNode.Parse(result);
            File.WriteAllLines(journal, [resumed[0], row.ToJsonString()]);
            var hollow = await Bench("--resume");
            Assert.Equal(1, hollow.Code);
            Assert.Contains($"line 2 is not a benchmark row ({why}", hollow.Error);
        }
        File.WriteAllText(journal, "{\"setup\":null}\n");
        Assert.Contains("line 1 is not a benchmark setup", (await Bench("--resume")).Error);
        using (var huge = new FileStream(journal, FileMode.Create)) huge.SetLength(17 << 20);
        var big = await Bench("--resume");
        Assert.Equal(1, big.Code);
        Assert.Contains("is larger than 16 MB: not a benchmark journal", big.Error);
        Assert.Equal(17 << 20, new FileInfo(journal).Length);

        // Without --resume the journal starts over.
        var fresh = await Bench();
        Assert.True(fresh.Code == 0, fresh.Error);
        Assert.Equal(6, File.ReadAllLines(journal).Length);
        Assert.Equal(measured, Quality());

        // A plan that asks for other rows keeps the ones it shares: a sweep measured in pieces, or extended.
        var more = await Bench("--samplers", "ddim,heun,euler", "--resume");
        Assert.True(more.Code == 0, more.Error);
        // unless euler's rows beat the kept best
        bool sameHeadline = more.Out.Split('\n').Any(l => l.Contains(" n   100 ") && l.Contains("(kept)"));
        Assert.Equal(4 + (sameHeadline ? 1 : 0), Regex.Matches(more.Out, @"\(kept\)").Count);
        Assert.Equal(6 + 2 + (sameHeadline ? 0 : 1), File.ReadAllLines(journal).Length); // + euler at 4 and 10 NFE
        Assert.Equal(measured[..5], Quality()[..5]);
        var fewer = await Bench("--samplers", "heun", "--resume");
        Assert.True(fewer.Code == 0, fewer.Error);
        Assert.True(Regex.Matches(fewer.Out, @"\(kept\)").Count >= 2, fewer.Out);
        Assert.Equal(measured[3..5], Quality()[1..3]);
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
