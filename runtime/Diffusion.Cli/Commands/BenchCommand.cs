using Diffusion.Cli.Output;
using System.CommandLine;
using System.Globalization;
using System.Text;
using Diffusion.Cli.Charts;
using Diffusion.Cli.Evaluation;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Samplers;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>bench --model M --out DIR</c>: the sampler comparison a practitioner wants, measured — for each sampler and
/// network-evaluation budget: Fréchet distance to the test set, class accuracy, ms per image and the NFE actually
/// used; written as report.md, results.csv and SVG charts (FD vs NFE, time vs NFE).
/// </summary>
public static class BenchCommand
{
    /// <summary>Network evaluations per step (the last step of Heun is a single Euler evaluation).</summary>
    private static int StepsFor(string sampler, int nfe) => sampler switch
    {
        "heun" => (nfe + 1) / 2,
        "pc" => Math.Max(1, nfe / 2),
        _ => nfe,
    };

    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new ModelArguments();
        var output = new Option<string>("--out", "-o") { Required = true, Description = "Folder for report.md, results.csv and the charts." };
        var classifier = new Option<string?>("--classifier") { Description = "Feature classifier .onnx (default: the shipped one)." };
        var reference = new Option<string>("--reference") { DefaultValueFactory = _ => "fashion-mnist-test" };
        var samplers = new Option<string>("--samplers") { DefaultValueFactory = _ => "all", Description = "Comma-separated samplers, or all." };
        var nfe = new Option<string>("--nfe") { DefaultValueFactory = _ => "5,10,20,50,100", Description = "Network-evaluation budgets." };
        var full = new Option<string>("--full") { DefaultValueFactory = _ => "ddpm", Description = "Samplers also run at 1000 NFE (comma-separated, or none)." };
        var tolerances = new Option<string>("--rk45-tolerances") { DefaultValueFactory = _ => "1e-1,1e-2,1e-3", Description = "rk45 rtol = atol values (its NFE is measured, not chosen)." };
        var count = new Option<int>("--count", "-n") { DefaultValueFactory = _ => 500, Description = "Images per configuration (and reference images)." };
        var guidance = new Option<float>("--guidance", "-g") { DefaultValueFactory = _ => 1 };
        var karras = new Option<bool?>("--karras") { Description = "Karras et al.'s σ grid (ρ = 7) for every sampler; --karras false forces timesteps. Default: the model's use_karras_sigmas." };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 100 };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0 };
        var command = new Command("bench", "Sampler quality-vs-cost report: FD, class accuracy, ms/image and NFE per sampler and budget.")
        {
            output, classifier, reference, samplers, nfe, full, tolerances, count, guidance, karras, batch, seed,
        };
        model.AddTo(command);
        command.SetAction((p, cancellation) => console.Guard(async () =>
        {
            var names = p.GetValue(samplers) == "all" ? SamplerRegistry.All.Select(e => e.Name).ToArray() : Split(p.GetValue(samplers)!);
            foreach (var name in names) SamplerRegistry.Create(name);
            if (p.GetValue(count) <= 0) throw new DiffusionArgumentException($"--count must be a positive number of images, got {p.GetValue(count)}.");
            var budgets = Split(p.GetValue(nfe)!).Select(v => int.TryParse(v, out var b) && b is > 0 and <= 2 * ImageGenerator.MaxSteps ? b : throw new DiffusionArgumentException($"--nfe '{v}' is not a positive integer (at most {2 * ImageGenerator.MaxSteps}).")).ToArray();
            var fullSet = p.GetValue(full) == "none" ? [] : Split(p.GetValue(full)!).ToHashSet();
            var rtols = p.GetValue(tolerances) == "none" ? [] : Split(p.GetValue(tolerances)!).Select(v =>
                double.TryParse(v, CultureInfo.InvariantCulture, out var t) && t > 0 ? t : throw new DiffusionArgumentException($"--rk45-tolerances '{v}' is not a positive number.")).ToArray();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var folder = OutputFolder.Create(p.GetValue(output)!, "--out");
            using var m = model.Load(p);
            using var features = new FeatureClassifier(p.GetValue(classifier) ?? EvalCommand.DefaultClassifier, m.Settings);
            var (images, n) = Evaluator.LoadReference(p.GetValue(reference)!, p.GetValue(count), m.ImageSize);
            var evaluator = new Evaluator(m, features, images, n);
            var results = new List<(EvalResult Result, double Tolerance)>();
            var plan = names.SelectMany(s => s == "rk45"
                ? rtols.Select(t => (Sampler: s, Steps: 1, Tolerance: t))
                : budgets.Concat(fullSet.Contains(s) ? [1000] : []).Select(b => (Sampler: s, Steps: StepsFor(s, b), Tolerance: 0.0))).ToList();
            foreach (var (sampler, steps, tolerance) in plan)
            {
                cancellation.ThrowIfCancellationRequested();
                var request = new GenerationRequest
                {
                    Sampler = sampler, Steps = Math.Min(steps, m.Schedule.TrainTimesteps), Count = p.GetValue(count), BatchSize = p.GetValue(batch), Seed = p.GetValue(seed),
                    Guidance = p.GetValue(guidance), KarrasSigmas = p.GetValue(karras),
                    Options = tolerance > 0 ? new SamplerOptions { RelativeTolerance = tolerance, AbsoluteTolerance = tolerance } : new SamplerOptions(),
                };
                var r = await Task.Run(() => evaluator.Evaluate(request, cancellation), cancellation);
                results.Add((r, tolerance));
                console.Out.WriteLine($"{sampler,-15} steps {request.Steps,4}  NFE {r.EvaluationsPerImage,6:0.#}  FD {r.FrechetDistance,8:0.###}  acc {r.ClassAccuracy,6:P1}  {r.MillisecondsPerImage,8:0.##} ms/image");
            }
            var run = new RunInfo("./diffusion " + string.Join(' ', p.Tokens.Select(t => t.Value)), m.Source, p.GetValue(count), p.GetValue(guidance),
                p.GetValue(karras) ?? m.Config.UseKarrasSigmas, m.Settings.Device.ToString(), clock.Elapsed,
                budgets.Concat(fullSet.Count > 0 ? [1000] : []).Distinct().Order().ToArray());
            Write(folder, results, run);
            console.Out.WriteLine($"wrote report.md, results.csv, fd_vs_nfe.svg, time_vs_nfe.svg in {folder}");
            return 0;
        }));
        return command;
    }

    /// <summary>How a report was made: the command, the model, the settings shared by every row, the machine.</summary>
    private sealed record RunInfo(string Command, string Model, int Count, float Guidance, bool Karras, string Device, TimeSpan WallTime, int[] Budgets);

    private static string[] Split(string text) => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static void Write(string folder, List<(EvalResult Result, double Tolerance)> rows, RunInfo run)
    {
        var inv = CultureInfo.InvariantCulture;
        var results = rows.Select(r => r.Result).ToList();
        string Setting((EvalResult Result, double Tolerance) row) =>
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
