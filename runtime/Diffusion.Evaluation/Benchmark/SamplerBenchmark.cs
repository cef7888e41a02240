using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Samplers;

namespace Diffusion.Evaluation.Benchmark;

/// <summary>
/// One measured configuration: a sampler at a number of steps (or, for an adaptive solver, a tolerance).
/// </summary>
public sealed record BenchmarkRow(EvalResult Result, double Tolerance)
{
    /// <summary>
    /// A headline configuration measured again with <see cref="BenchmarkPlan.HeadlineCount"/> images.
    /// </summary>
    public bool Headline { get; init; }
}

/// <summary>
/// One configuration as asked for: the sampler's name, steps, tolerance (adaptive solvers), images, and whether it is a
/// headline row.
/// </summary>
public sealed record BenchmarkConfiguration(string Sampler, int Steps, double Tolerance, int Count, bool Headline);

/// <summary>
/// How a benchmark was made: the command, the model, the settings every row shares, the device, the wall time (of all
/// its sittings, when it was resumed) and the number of sittings.
/// </summary>
public sealed record BenchmarkRun(string Command, string Model, int Count, float Guidance, bool Karras, string Device,
    TimeSpan WallTime, int[] Budgets, int Sittings = 1);

/// <summary>
/// What to measure: samplers × network-evaluation budgets (plus full-length runs), and the tolerances of adaptive
/// solvers.
/// </summary>
public sealed record BenchmarkPlan
{
    /// <summary>Sampler names.</summary>
    public required IReadOnlyList<string> Samplers { get; init; }
    /// <summary>Network evaluations per image to give each fixed-step sampler.</summary>
    public IReadOnlyList<int> Budgets { get; init; } = [5, 10, 20, 50, 100];
    /// <summary>Samplers also run with 1000 evaluations (the reference: DDPM's own length).</summary>
    public IReadOnlySet<string> FullLength { get; init; } = new HashSet<string> { "ddpm" };
    /// <summary>rtol = atol values for adaptive solvers, whose evaluations are measured rather than chosen.</summary>
    public IReadOnlyList<double> Tolerances { get; init; } = [1e-1, 1e-2, 1e-3];
    /// <summary>Generated images per row.</summary>
    public int Count { get; init; } = 500;
    /// <summary>
    /// Images for the headline rows — the best configuration within 10 NFE and the longest DDPM run — measured again
    /// after the sweep, where FD's bias is smaller (0: not measured again).
    /// </summary>
    public int HeadlineCount { get; init; } = 2000;
    /// <summary>Images per network call.</summary>
    public int BatchSize { get; init; } = 100;
    /// <summary>Noise seed (every row draws the same x_T).</summary>
    public ulong Seed { get; init; }
    /// <summary>Classifier-free guidance weight.</summary>
    public float Guidance { get; init; } = 1;
    /// <summary>Karras σ grid for every sampler; null: the model's default.</summary>
    public bool? Karras { get; init; }

    /// <summary>
    /// The (sampler, steps, tolerance) rows this plan measures; steps are capped at the model's timesteps.
    /// </summary>
    public IReadOnlyList<(string Sampler, int Steps, double Tolerance)> Configurations(int trainTimesteps) =>
        Samplers.SelectMany(name =>
        {
            var sampler = SamplerRegistry.Create(name);
            return sampler.Info.IsAdaptive
                ? Tolerances.Select(t => (name, 1, t))
                : Budgets.Concat(FullLength.Contains(name) ? [1000] : []).Select(b =>
                    (name, Math.Min(sampler.StepsForBudget(b), trainTimesteps), 0.0));
        }).ToList();

    /// <summary>Checks the plan; errors name the plan's own properties.</summary>
    public void Validate()
    {
        if (Samplers.Count == 0)
            throw new DiffusionArgumentException(nameof(Samplers), "a benchmark needs at least one sampler.");
        foreach (var s in Samplers) Info(s);
        if (Count <= 0)
            throw new DiffusionArgumentException(nameof(Count), $"expected a positive number of images, got {Count}.");
        if (HeadlineCount < 0)
            throw new DiffusionArgumentException(nameof(HeadlineCount),
                $"expected 0 (off) or a number of images, got {HeadlineCount}.");
        foreach (var b in Budgets)
            if (b is <= 0 or > 2 * ImageGenerator.MaxSteps)
                throw new DiffusionArgumentException(nameof(Budgets),
                    $"{b} is not a number of evaluations in 1…{2 * ImageGenerator.MaxSteps}.");
        foreach (var t in Tolerances)
            if (!(t > 0)) throw new DiffusionArgumentException(nameof(Tolerances), $"{t} is not a positive number.");
    }

    private static SamplerInfo Info(string name) => SamplerRegistry.Find(name)
        ?? throw new DiffusionArgumentException(nameof(Samplers), $"'{name}' is not a sampler the benchmark knows "
            + $"(the runtime's: {string.Join(", ", SamplerRegistry.All.Select(e => e.Name))}).");
}

/// <summary>Runs a <see cref="BenchmarkPlan"/> row by row through an <see cref="Evaluator"/>.</summary>
public static class SamplerBenchmark
{
    /// <summary>
    /// Measures every configuration of <paramref name="plan"/>; reports each row as it completes. With a
    /// <paramref name="journal"/>, rows it holds are taken from it instead of measured again, and new ones are appended
    /// to it.
    /// </summary>
    public static IReadOnlyList<BenchmarkRow> Run(Evaluator evaluator, BenchmarkPlan plan,
        IProgress<BenchmarkRow>? progress = null,
        CancellationToken cancellation = default, BenchmarkJournal? journal = null)
    {
        plan.Validate();
        var rows = new List<BenchmarkRow>();
        void Measure(string sampler, int steps, double tolerance, int count, bool headline)
        {
            cancellation.ThrowIfCancellationRequested();
            var configuration = new BenchmarkConfiguration(sampler, steps, tolerance, count, headline);
            var row = journal?.Find(configuration);
            if (row is null)
            {
                var request = new GenerationRequest
                {
                    Sampler = sampler, Steps = steps, Count = count, BatchSize = plan.BatchSize, Seed = plan.Seed,
                    Guidance = plan.Guidance, KarrasSigmas = plan.Karras,
                    Options = tolerance > 0 ? new SamplerOptions
                    {
                        RelativeTolerance = tolerance, AbsoluteTolerance = tolerance,
                    } : new SamplerOptions(),
                };
                var clock = System.Diagnostics.Stopwatch.StartNew();
                row = new BenchmarkRow(evaluator.Evaluate(request, cancellation), tolerance) { Headline = headline };
                journal?.Append(configuration, row, clock.Elapsed);
            }
            rows.Add(row);
            progress?.Report(row);
        }
        foreach (var (sampler, steps, tolerance) in plan.Configurations(evaluator.Model.Schedule.TrainTimesteps))
            Measure(sampler, steps, tolerance, plan.Count, headline: false);
        if (plan.HeadlineCount > 0)
            foreach (var row in HeadlineRows(rows).Distinct().ToList())
                Measure(row.Result.Sampler, row.Result.Steps, row.Tolerance, plan.HeadlineCount, headline: true);
        return rows;
    }

    /// <summary>
    /// The headline's configurations among <paramref name="rows"/>: the lowest FD within 10 NFE, and DDPM's longest
    /// run.
    /// </summary>
    public static IEnumerable<BenchmarkRow> HeadlineRows(IEnumerable<BenchmarkRow> rows)
    {
        var list = rows.ToList();
        if (list.Where(r => r.Result.EvaluationsPerImage <= 10).MinBy(r => r.Result.FrechetDistance) is { } best)
            yield return best;
        if (list.Where(r => r.Result.Sampler == "ddpm").MaxBy(r => r.Result.EvaluationsPerImage) is { } reference)
            yield return reference;
    }
}
