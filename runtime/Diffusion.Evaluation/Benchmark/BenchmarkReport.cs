using System.Globalization;
using System.Text;
using Diffusion.Evaluation.Charts;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Evaluation.Benchmark;

/// <summary>A benchmark written out: report.md (headline, best sampler per budget, every row), results.csv and two SVG charts.</summary>
public static class BenchmarkReport
{
    /// <summary>Writes the four files into <paramref name="folder"/>, each atomically.</summary>
    public static void Write(string folder, IReadOnlyList<BenchmarkRow> rows, BenchmarkRun run)
    {
        var inv = CultureInfo.InvariantCulture;
        var results = rows.Select(r => r.Result).ToList();
        string Setting(BenchmarkRow row) =>
            row.Tolerance > 0 ? string.Create(inv, $"tol {row.Tolerance:0.###e0}") : string.Create(inv, $"{row.Result.Steps} steps");
        string Accuracy(EvalResult r) => double.IsNaN(r.ClassAccuracy) ? "–" : r.ClassAccuracy.ToString("P1", inv);

        var csv = new StringBuilder("sampler,steps,rtol,nfe,fd,class_accuracy,ms_per_image\n");
        foreach (var (r, tolerance) in rows)
            csv.Append(string.Create(inv, $"{r.Sampler},{r.Steps},{(tolerance > 0 ? tolerance.ToString("G", inv) : "")},{r.EvaluationsPerImage:0.##},{r.FrechetDistance:0.####},{r.ClassAccuracy:0.####},{r.MillisecondsPerImage:0.###}\n"));

        var md = new StringBuilder("# Sampler benchmark\n\n");
        md.Append(string.Create(inv, $"Model `{Path.GetFileName(run.Model)}`, {run.Count} generated images per row against {run.Count} test images, guidance {run.Guidance}, "))
          .Append(run.Karras ? "Karras σ grid (ρ = 7)" : "timesteps by the model's timestep_spacing")
          .Append(string.Create(inv, $", device {run.Device}, {Environment.ProcessorCount} logical cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; "))
          .Append(string.Create(inv, $"the whole run took {run.WallTime.TotalMinutes:0.#} min.\n\n"))
          .Append($"Made with `{run.Command}`.\n\n")
          .Append("FD = Fréchet distance between the generated and the test images in the classifier's feature space (lower is better); ")
          .Append("class acc. = share of generated images the classifier puts in the class they were generated for; NFE = network ")
          .Append("evaluations per image actually made (guidance > 1 doubles the batch of each, not the count); ms / image = wall time of ")
          .Append("sampling divided by the number of images.\n\n");

        var best = results.Where(r => r.EvaluationsPerImage <= 10).OrderBy(r => r.FrechetDistance).FirstOrDefault();
        var reference = results.Where(r => r.Sampler == "ddpm").OrderByDescending(r => r.EvaluationsPerImage).FirstOrDefault();
        if (best is not null && reference is not null)
            md.Append(string.Create(inv, $"**Headline: {best.Sampler} at {best.EvaluationsPerImage:0} NFE reaches FD {best.FrechetDistance:0.##} vs DDPM at {reference.EvaluationsPerImage:0} NFE: FD {reference.FrechetDistance:0.##}.**\n\n"));

        if (run.Budgets.Length > 1)
        {
            md.Append("## Best sampler per budget\n\n| NFE ≤ | best sampler | FD | class acc. |\n| ---: | --- | ---: | ---: |\n");
            foreach (var b in run.Budgets)
                if (results.Where(r => r.EvaluationsPerImage <= b).MinBy(r => r.FrechetDistance) is { } top)
                    md.Append(string.Create(inv, $"| {b} | {top.Sampler} ({top.EvaluationsPerImage:0.#} NFE) | {top.FrechetDistance:0.###} | {Accuracy(top)} |\n"));
            md.Append('\n');
        }

        md.Append("## All runs\n\n| sampler | setting | NFE | FD | class acc. | ms / image |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
        foreach (var row in rows)
            md.Append(string.Create(inv, $"| {row.Result.Sampler} | {Setting(row)} | {row.Result.EvaluationsPerImage:0.#} | {row.Result.FrechetDistance:0.###} | {Accuracy(row.Result)} | {row.Result.MillisecondsPerImage:0.##} |\n"));
        md.Append("\n![FD vs NFE](fd_vs_nfe.svg)\n![time vs NFE](time_vs_nfe.svg)\n");

        var bySampler = results.GroupBy(r => r.Sampler).ToList();
        var fd = new SvgLineChart { Title = "Fréchet distance vs network evaluations", XLabel = "NFE per image", YLabel = "FD (lower is better)", LogX = true, LogY = true }
            .Render(bySampler.Select(g => new Series(g.Key, g.Select(r => (r.EvaluationsPerImage, r.FrechetDistance)).ToList())).ToList());
        var time = new SvgLineChart { Title = "Time per image vs network evaluations", XLabel = "NFE per image", YLabel = "ms per image", LogX = true, LogY = true }
            .Render(bySampler.Select(g => new Series(g.Key, g.Select(r => (r.EvaluationsPerImage, r.MillisecondsPerImage)).ToList())).ToList());
        foreach (var (file, text) in new[] { ("results.csv", csv.ToString()), ("report.md", md.ToString()), ("fd_vs_nfe.svg", fd), ("time_vs_nfe.svg", time) })
            AtomicFile.Write(Path.Combine(folder, file), s => s.Write(Encoding.UTF8.GetBytes(text)));
    }
}
