using System.Globalization;
using System.Text;
using Diffusion.Evaluation.Charts;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Evaluation.Benchmark;

/// <summary>
/// A benchmark written out: report.md (headline, best sampler per budget, every row), results.csv and two SVG charts.
/// </summary>
public static class BenchmarkReport
{
    /// <summary>Writes the four files into <paramref name="folder"/>, each atomically.</summary>
    public static void Write(string folder, IReadOnlyList<BenchmarkRow> rows, BenchmarkRun run)
    {
        var inv = CultureInfo.InvariantCulture;
        var results = rows.Where(r => !r.Headline).Select(r => r.Result).ToList();
        string Setting(BenchmarkRow row) =>
            row.Tolerance > 0 ? string.Create(inv, $"tol {row.Tolerance:0.###e0}")
                : string.Create(inv, $"{row.Result.Steps} steps");
        string Accuracy(EvalResult r) => double.IsNaN(r.ClassAccuracy) ? "–" : r.ClassAccuracy.ToString("P1", inv);
        string FloorFd(EvalResult r) => r.Floor is { } f ? string.Create(inv, $"{f.FrechetDistance:0.##}") : "–";
        string FloorKid(EvalResult r) => r.Floor is { } f ? f.Kid.ToString() : "–";
        var sweep = rows.Where(r => !r.Headline).ToList();
        var headlines = rows.Where(r => r.Headline).ToList();

        var csv = new StringBuilder("sampler,steps,rtol,nfe,count,fd,fd_floor,kid,kid_se,kid_floor,class_accuracy,ms_per_image,headline\n");
        foreach (var row in rows)
        {
            var r = row.Result;
            csv.Append(string.Create(inv,
                $"{r.Sampler},{r.Steps},{(row.Tolerance > 0 ? row.Tolerance.ToString("G", inv) : "")},{r.EvaluationsPerImage:0.##},{r.Count},"))
               .Append(string.Create(inv,
                   $"{r.FrechetDistance:0.####},{(r.Floor is { } f ? f.FrechetDistance.ToString("0.####", inv) : "")},{r.Kid.Value:0.######},{r.Kid.StandardError:0.######},"))
               .Append(string.Create(inv,
                   $"{(r.Floor is { } g ? g.Kid.Value.ToString("0.######", inv) : "")},{r.ClassAccuracy:0.####},{r.MillisecondsPerImage:0.###},{(row.Headline ? 1 : 0)}\n"));
        }

        string realAccuracy = sweep.Select(r => r.Result.Reference).FirstOrDefault(a => a is not null) is { } real
            ? string.Create(inv,
                $" (real images score {real.Overall:P1}: the classifier on {real.Count} labelled test " +
                    $"images, mean over classes)") : "";
        var md = new StringBuilder("# Sampler benchmark\n\n");
        md.Append(string.Create(inv,
            $"Model `{Path.GetFileName(run.Model)}`, {run.Count} generated images per row against {run.Count} test " +
                $"images, guidance {run.Guidance}, "))
          .Append(run.Karras ? "Karras σ grid (ρ = 7)" : "timesteps by the model's timestep_spacing")
          .Append(string.Create(inv,
              $", device {run.Device}, {Environment.ProcessorCount} logical " +
                  $"cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; "))
          .Append(run.Sittings > 1
              ? string.Create(inv,
                  $"the run took {run.WallTime.TotalMinutes:0.#} min in {run.Sittings} sittings (resumed with " +
                      $"`--resume`: each row was measured once, in one sitting).\n\n")
              : string.Create(inv, $"the whole run took {run.WallTime.TotalMinutes:0.#} min.\n\n"))
          .Append($"Made with `{run.Command}`.\n\n")
          .Append("FD = Fréchet distance between the generated and the test images in the classifier's feature space " +
              "(lower is better); ")
          .Append("its floor is the FD between as many test and training images — what a perfect model scores at " +
              "that count (FD is biased ")
          .Append("upwards at small counts, so only numbers at the same count compare); KID = kernel inception " +
              "distance (Bińkowski et al. 2018, ")
          .Append("cubic polynomial kernel, unbiased: ≈ 0 for a perfect model at any count) ± its " +
              "jackknife standard error; ")
          .Append("class acc. = share of generated images the classifier puts in the " +
              "class they were generated for").Append(realAccuracy).Append("; NFE = network ")
          .Append("evaluations per image actually made (guidance > 1 doubles the batch of each, not the count); ms / " +
              "image = wall time of ")
          .Append("sampling divided by the number of images.\n\n");

        var pair = (headlines.Count > 0 ? headlines : SamplerBenchmark.HeadlineRows(sweep).ToList()).Select(r =>
            r.Result).ToList();
        if (pair.Count == 2)
        {
            var (best, reference) = (pair[0], pair[1]);
            string Floor(EvalResult r) => r.Floor is { } f
                ? string.Create(inv, $" (floor {f.FrechetDistance:0.##}), KID {r.Kid} (floor {f.Kid})")
                    : $", KID {r.Kid}";
            md.Append(string.Create(inv,
                $"**Headline ({best.Count} images each): {best.Sampler} at {best.EvaluationsPerImage:0} NFE reaches " +
                    $"FD {best.FrechetDistance:0.##}{Floor(best)} vs DDPM at {reference.EvaluationsPerImage:0} NFE: " +
                        $"FD {reference.FrechetDistance:0.##}{Floor(reference)}.**\n\n"));
        }

        if (run.Budgets.Length > 1)
        {
            md.Append("## Best sampler per budget\n\n| NFE ≤ | best sampler | FD | class acc. |\n| " +
                "---: | --- | ---: | ---: |\n");
            foreach (var b in run.Budgets)
                if (sweep.Select(r => r.Result).Where(r => r.EvaluationsPerImage <= b).MinBy(r =>
                    r.FrechetDistance) is { } top)
                    md.Append(string.Create(inv,
                        $"| {b} | {top.Sampler} ({top.EvaluationsPerImage:0.#} NFE) | {top.FrechetDistance:0.###} " +
                            $"| {Accuracy(top)} |\n"));
            md.Append('\n');
        }

        void Table(string title, IEnumerable<BenchmarkRow> table)
        {
            md.Append(title).Append("\n\n| sampler | setting | NFE | FD | FD floor | KID | KID floor | class acc. | " +
                "ms / image |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
            foreach (var row in table)
                md.Append(string.Create(inv,
                    $"| {row.Result.Sampler} | {Setting(row)} | {row.Result.EvaluationsPerImage:0.#} " +
                        $"| {row.Result.FrechetDistance:0.###} | {FloorFd(row.Result)} | {row.Result.Kid} " +
                            $"| {FloorKid(row.Result)} | {Accuracy(row.Result)} " +
                                $"| {row.Result.MillisecondsPerImage:0.##} |\n"));
            md.Append('\n');
        }
        if (headlines.Count > 0)
            Table(string.Create(inv, $"## Headline rows, {headlines[0].Result.Count} images each"), headlines);
        Table(string.Create(inv, $"## All runs, {run.Count} images each"), sweep);
        md.Append("![FD vs NFE](fd_vs_nfe.svg)\n![time vs NFE](time_vs_nfe.svg)\n");

        var bySampler = results.GroupBy(r => r.Sampler).ToList();
        var fd = new SvgLineChart
        {
            Title = "Fréchet distance vs network evaluations", XLabel = "NFE per image",
            YLabel = "FD (lower is better)", LogX = true, LogY = true,
        }
            .Render(bySampler.Select(g =>
                new Series(g.Key, g.Select(r => (r.EvaluationsPerImage, r.FrechetDistance)).ToList())).ToList());
        var time = new SvgLineChart
        {
            Title = "Time per image vs network evaluations", XLabel = "NFE per image", YLabel = "ms per image",
            LogX = true, LogY = true,
        }
            .Render(bySampler.Select(g =>
                new Series(g.Key, g.Select(r => (r.EvaluationsPerImage, r.MillisecondsPerImage)).ToList())).ToList());
        foreach (var (file, text) in new[]
        {
            ("results.csv", csv.ToString()), ("report.md", md.ToString()), ("fd_vs_nfe.svg", fd),
                ("time_vs_nfe.svg", time),
        })
            AtomicFile.Write(Path.Combine(folder, file), s => s.Write(Encoding.UTF8.GetBytes(text)));
    }
}
