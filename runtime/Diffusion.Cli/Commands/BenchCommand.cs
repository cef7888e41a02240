using Diffusion.Cli.Output;
using System.CommandLine;
using System.Globalization;
using Diffusion.Evaluation;
using Diffusion.Evaluation.Benchmark;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>bench --model M --out DIR</c>: the sampler comparison a practitioner wants, measured — for each sampler and
/// network-evaluation budget: Fréchet distance to the test set, class accuracy, ms per image and the NFE actually
/// used; written as report.md, results.csv and SVG charts (FD vs NFE, time vs NFE).
/// </summary>
public static class BenchCommand
{
    /// <summary>The plan's defaults, the one place they are written (the samplers are the option's own: all).</summary>
    private static readonly BenchmarkPlan Defaults = new() { Samplers = [] };

    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new ModelArguments();
        var output = new Option<string>("--out", "-o")
        {
            Required = true, Description = "Folder for report.md, results.csv and the charts.",
        };
        var classifier = new Option<string?>("--classifier")
        {
            Description = "Feature classifier .onnx (default: the shipped one).",
        };
        var reference = new Option<string>("--reference") { DefaultValueFactory = _ => "fashion-mnist-test" };
        var samplers = new Option<string>("--samplers")
        {
            DefaultValueFactory = _ => "all", Description = "Comma-separated samplers, or all.",
        };
        var nfe = new Option<string>("--nfe")
        {
            DefaultValueFactory = _ => string.Join(",", Defaults.Budgets),
            Description = "Network-evaluation budgets.",
        };
        var full = new Option<string>("--full")
        {
            DefaultValueFactory = _ => string.Join(",", Defaults.FullLength),
            Description = "Samplers also run at 1000 NFE (comma-separated, or none).",
        };
        var tolerances = new Option<string>("--rk45-tolerances")
        {
            DefaultValueFactory = _ =>
                string.Join(",", Defaults.Tolerances.Select(t => t.ToString(CultureInfo.InvariantCulture))),
                    Description = "rk45 rtol = atol values (its NFE is measured, not chosen).",
        };
        var count = new Option<int>("--count", "-n")
        {
            DefaultValueFactory = _ => Defaults.Count,
            Description = "Images per configuration (and reference images).",
        };
        var headlineCount = new Option<int>("--headline-count")
        {
            DefaultValueFactory = _ => Defaults.HeadlineCount,
            Description = "Images for the headline rows (best within 10 NFE, DDPM's longest), measured again " +
                    "after the sweep; 0: off.",
        };
        var floor = new Option<string?>("--floor-reference")
        {
            Description = "A second sample of the data for the noise floor (default: fashion-mnist with " +
                "fashion-mnist-test; none: no floor).",
        };
        var guidance = new Option<float>("--guidance", "-g") { DefaultValueFactory = _ => Defaults.Guidance };
        var karras = new Option<bool?>("--karras")
        {
            Description = "Karras et al.'s σ grid (ρ = 7) for every sampler; --karras false forces timesteps. " +
                "Default: the model's use_karras_sigmas.",
        };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => Defaults.BatchSize };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => Defaults.Seed };
        var resume = new Option<bool>("--resume")
        {
            Description = $"Continue an interrupted run in --out: the rows of this plan that " +
                $"its {BenchmarkJournal.FileName} holds (same model, classifier, data, seed, guidance and device) " +
                    $"are kept, the rest measured.",
        };
        var command = new Command("bench",
            "Sampler quality-vs-cost report: FD, class accuracy, ms/image and NFE per sampler and budget.")
        {
            output, classifier, reference, floor, samplers, nfe, full, tolerances, count, headlineCount, guidance,
                karras, batch, seed, resume,
        };
        model.AddTo(command);
        command.SetAction((p, cancellation) => console.Guard(async () =>
        {
            var names = p.GetValue(samplers) == "all" ? SamplerRegistry.All.Select(e => e.Name).ToArray()
                : Split(p.GetValue(samplers)!);
            var plan = new BenchmarkPlan
            {
                Samplers = names,
                Budgets = Split(p.GetValue(nfe)!).Select(v => int.TryParse(v, out var b) ? b
                    : throw new DiffusionArgumentException("--nfe", $"'{v}' is not a positive integer.")).ToArray(),
                FullLength = p.GetValue(full) == "none" ? new HashSet<string>() : Split(p.GetValue(full)!).ToHashSet(),
                Tolerances = p.GetValue(tolerances) == "none" ? [] : Split(p.GetValue(tolerances)!).Select(v =>
                    double.TryParse(v, CultureInfo.InvariantCulture, out var t) ? t
                        : throw new DiffusionArgumentException("--rk45-tolerances",
                            $"'{v}' is not a positive number.")).ToArray(),
                Count = p.GetValue(count), HeadlineCount = p.GetValue(headlineCount), BatchSize = p.GetValue(batch),
                Seed = p.GetValue(seed), Guidance = p.GetValue(guidance), Karras = p.GetValue(karras),
            };
            plan.Validate();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var folder = OutputFolder.Create(p.GetValue(output)!, "--out");
            using var m = model.Load(p);
            using var features = EvalCommand.LoadClassifier(p.GetValue(classifier), m.Settings);
            var setup = Setup(plan, m, p.GetValue(classifier) ?? EvalCommand.DefaultClassifier, p.GetValue(reference)!,
                p.GetValue(floor));
            using var journal = p.GetValue(resume) ? BenchmarkJournal.Resume(folder, setup)
                : BenchmarkJournal.Start(folder, setup);
            if (journal.Earlier.Count > 0)
                console.Error.WriteLine($"resuming: {journal.Earlier.Count} rows in {journal.Path} " +
                    $"({journal.EarlierTime.TotalMinutes:0.#} min in {journal.Sitting - 1} " +
                        $"sitting{(journal.Sitting > 2 ? "s" : "")}); those this plan asks for are kept");
            var evaluator = EvalCommand.CreateEvaluator(p.GetValue(reference)!, p.GetValue(floor),
                Math.Max(plan.Count, plan.HeadlineCount), m, features);
            int total = plan.Configurations(m.Schedule.TrainTimesteps).Count + (plan.HeadlineCount > 0 ? 2 : 0),
                finished = 0;
            var overall = new ProgressLines(console.Error, "bench", TimeSpan.Zero);
            IReadOnlyList<BenchmarkRow> rows;
            try
            {
                rows = await Task.Run(() => SamplerBenchmark.Run(evaluator, plan, new LineProgress<BenchmarkRow>(row =>
                {
                    var r = row.Result;
                    overall.Report(++finished / (double)total, $"{finished}/{total} rows");
                    console.Out.WriteLine($"{r.Sampler,-15} steps {r.Steps,4}  NFE {r.EvaluationsPerImage,6:0.#}  " +
                        $"n {r.Count,5}  FD {r.FrechetDistance,8:0.###}{(r.Floor is { } f ? $" (floor {f.FrechetDistance:0.##})" : "")}  KID {r.Kid}  acc {r.ClassAccuracy,6:P1}  {r.MillisecondsPerImage,8:0.##} ms/image" +
                        (journal.Earlier.Contains(row) ? "  (kept)" : ""));
                }), cancellation, journal), cancellation);
            }
            catch (OperationCanceledException)
            {
                console.Error.WriteLine($"cancelled; the rows measured so far are in {journal.Path} (the report was " +
                    $"not written): add --resume to go on.");
                return ExitCodes.Cancelled;
            }
            var run = new BenchmarkRun("./diffusion "
                + string.Join(' ', p.Tokens.Where(t => t.Value != "--resume").Select(t => t.Value)), m.Source,
                    plan.Count, plan.Guidance,
                plan.Karras ?? m.Config.UseKarrasSigmas, m.Settings.Device.ToString(), clock.Elapsed
                    + journal.EarlierTimeOf(rows),
                plan.Budgets.Concat(plan.FullLength.Count > 0 ? [1000] : []).Distinct().Order().ToArray(),
                    journal.Sitting);
            BenchmarkReport.Write(folder, rows, run);
            console.Out.WriteLine($"wrote report.md, results.csv, fd_vs_nfe.svg, time_vs_nfe.svg in {folder}");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// What every row's numbers depend on, by name: a resumed run must match it (timing included: device, threads,
    /// cores). Which rows a plan asks for (samplers, budgets, counts) is not part of it: a resumed run may ask for
    /// other rows, keeping those it shares with the journal — a sweep can be measured in pieces, or extended.
    /// </summary>
    private static Dictionary<string,
        string> Setup(BenchmarkPlan plan, DiffusionModel model, string classifier, string reference, string? floor)
    {
        var inv = CultureInfo.InvariantCulture;
        return new Dictionary<string, string>
        {
            ["model"] = $"{Path.GetFileName(model.Source)} sha256 {BenchmarkJournal.Sha256(model.Source)}",
            ["config"] = model.Config.ToJson(),
            ["classifier"] = $"{Path.GetFileName(classifier)} sha256 {BenchmarkJournal.Sha256(classifier)}",
            ["reference"] = reference,
            ["floor_reference"] = floor ?? "(default)",
            ["guidance"] = plan.Guidance.ToString("R", inv),
            ["karras"] = plan.Karras?.ToString() ?? "(the model's)",
            ["batch"] = plan.BatchSize.ToString(inv),
            ["seed"] = plan.Seed.ToString(inv),
            ["device"] = model.Settings.Device.ToString(),
            ["onnx_runtime"] = string.Create(inv, $"intra-op threads {model.Settings.IntraOpThreads}, inter-op {model.Settings.InterOpThreads}, {model.Settings.OptimizationLevel}, " +
                $"CUDA graphs {model.Settings.CudaGraphs}, CUDA " +
                    $"options {string.Join(' ', model.Settings.CudaOptions.OrderBy(o => o.Key).Select(o => $"{o.Key}={o.Value}"))}"),
            ["cores"] = Environment.ProcessorCount.ToString(inv),
        };
    }

    private static string[] Split(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
