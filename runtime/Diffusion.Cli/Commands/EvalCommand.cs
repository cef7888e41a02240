using Diffusion.Cli.Output;
using Diffusion.Runtime;
using System.CommandLine;
using Diffusion.Evaluation;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Spectre.Console;
using System.Globalization;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>eval</c>: Fréchet distance of generated images to the test set in the classifier's feature space, and class
/// accuracy.
/// </summary>
public static class EvalCommand
{
    /// <summary>The shipped quality classifier.</summary>
    public static string DefaultClassifier =>
        Path.Combine(AppContext.BaseDirectory, "models", "fashion-mnist", "classifier.onnx");

    /// <summary>
    /// The feature classifier <paramref name="path"/> names (default: the shipped one); a missing file says how to
    /// train one.
    /// </summary>
    internal static FeatureClassifier LoadClassifier(string? path, SessionSettings settings)
    {
        path ??= DefaultClassifier;
        if (!File.Exists(path))
            throw new DiffusionException("--classifier", $"'{path}' does not exist. Train one with ./diffusion "
                + "train-classifier --out models/fashion-mnist/classifier.onnx, or name another.");
        return new FeatureClassifier(path, settings);
    }

    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new ModelArguments();
        var classifier = new Option<string?>("--classifier")
        {
            Description = "Feature classifier .onnx (default: the shipped Fashion-MNIST one).",
        };
        var reference = new Option<string>("--reference")
        {
            DefaultValueFactory = _ => "fashion-mnist-test",
            Description = "Reference images: fashion-mnist-test, an IDX file or a .npy.",
        };
        var floor = new Option<string?>("--floor-reference")
        {
            Description = "A second sample of the data for the noise floor (default: fashion-mnist, the training " +
                "set, with fashion-mnist-test; none: no floor).",
        };
        var sampler = new Option<string?>("--sampler", "-s")
        {
            Description = $"Sampler; default: the model's diffusers scheduler when its config names one, " +
                $"else {SamplerRegistry.DefaultName}.",
        };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 20 };
        var count = new Option<int>("--count", "-n")
        {
            DefaultValueFactory = _ => 1000, Description = "Generated and reference images.",
        };
        var guidance = new Option<float>("--guidance", "-g") { DefaultValueFactory = _ => 1 };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0 };
        var seeds = new Option<int>("--seeds")
        {
            DefaultValueFactory = _ => 1,
            Description = "Evaluate at this many sampling seeds (--seed, --seed + 1, …) against the same reference " +
                "images, each with its own disjoint floor sample, and report mean ± standard deviation: how far one " +
                    "run's numbers move by the luck of the noise.",
        };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 100 };
        var karras = new Option<bool?>("--karras")
        {
            Description = "Karras et al.'s σ grid (ρ = 7); --karras false forces timesteps. Default: the model's " +
                "use_karras_sigmas.",
        };
        var processes = Ranks.Option();
        var command = new Command("eval",
            "Fréchet distance (classifier features) and class accuracy of generated images.")
        {
            classifier, reference, floor, sampler, steps, count, guidance, seed, seeds, batch, karras, processes,
        };
        model.AddTo(command);
        command.SetAction((p, cancellation) => console.Guard(async () =>
        {
            if (await Ranks.Launch(p, processes, console, cancellation) is { } launched) return launched;
            if (p.GetValue(count) <= 0)
                throw new DiffusionArgumentException("--count",
                    $"must be a positive number of images, got {p.GetValue(count)}.");
            if (p.GetValue(seeds) is < 1 or > MaxSeeds)
                throw new DiffusionArgumentException("--seeds",
                    $"must be a number of sampling seeds from 1 to {MaxSeeds}, got {p.GetValue(seeds)}.");
            // Every rank generates its share of each seed's images; rank 0 gathers and scores them.
            using var ranks = Ranks.Join();
            using var m = await ranks.Collectively(() => Task.FromResult(model.Load(p, ranks)));
            using var features = await ranks.Collectively(() => Task.FromResult(ranks.IsRoot
                ? LoadClassifier(p.GetValue(classifier), m.Settings) : null));
            var evaluator = await ranks.Collectively(() => Task.FromResult(features is null ? null
                : CreateEvaluator(p.GetValue(reference)!, p.GetValue(floor), p.GetValue(count), m, features,
                    p.GetValue(seeds))));
            var request = new GenerationRequest
            {
                Sampler = p.GetValue(sampler), Steps = p.GetValue(steps), Count = p.GetValue(count),
                Seed = p.GetValue(seed),
                BatchSize = p.GetValue(batch), Guidance = p.GetValue(guidance), KarrasSigmas = p.GetValue(karras),
            };
            var progress = ranks.IsRoot ? new ProgressLines(console.Error, "eval") : null;
            var runs = new List<EvalResult>();
            for (int k = 0; k < p.GetValue(seeds); k++)
            {
                var run = Evaluator.SeedRun(request, k, m.NumClasses);
                var mine = await ranks.Collectively(() => Task.Run(() =>
                {
                    var (first, n) = ranks.Share(run.Count, run.BatchSize);
                    var share = Ranks.Slice(run, first, n, m.Shape.Size, m.Shape.Size);
                    return new ImageGenerator(m).Generate(share, progress, cancellation);
                }, cancellation));
                var all = ranks.Gather(mine);
                // Scored inside a collective step too: a failure on rank 0 must not leave the others waiting.
                var scored = await ranks.Collectively(() => Task.FromResult(all is null ? null
                    : evaluator!.Score(run, all, k)));
                if (scored is not null) runs.Add(scored);
            }
            if (!ranks.IsRoot) return ExitCodes.Ok;
            var series = new EvalSeries(runs);
            var result = series.Runs[0];
            var table = new Table().AddColumns("metric", "value");
            int n = Math.Min(result.Count, evaluator!.ReferenceCount);
            if (series.Runs.Count == 1)
            {
                table.AddPlainRow("Fréchet distance",
                    $"{result.FrechetDistance:0.###} ({result.Count} generated vs {n} reference)");
                if (result.Floor is { } f)
                    table.AddPlainRow("  noise floor",
                        $"{f.FrechetDistance:0.###} ({f.Count} reference vs {f.Count} of a second sample; a perfect " +
                            $"model's FD at this count)");
                table.AddPlainRow("kernel inception distance",
                    $"{result.Kid} (unbiased: ≈ 0 for a perfect model at any count)");
                if (result.Floor is { } g) table.AddPlainRow("  noise floor", g.Kid.ToString());
            }
            else
            {
                string Values(Func<EvalResult, double> metric, string format) =>
                    string.Join(", ",
                        series.Runs.Select(r => metric(r).ToString(format, CultureInfo.InvariantCulture)));
                int k = series.Runs.Count;
                table.AddPlainRow("Fréchet distance",
                    $"{series.FrechetDistance.ToString("0.###")} (mean ± sd over {k} seeds; {result.Count} generated " +
                        $"vs {n} reference)");
                table.AddPlainRow("  each seed", Values(r => r.FrechetDistance, "0.##"));
                if (series.FloorFrechetDistance is { } f)
                    table.AddPlainRow("  noise floor",
                        $"{f.ToString("0.###")} ({f.Count} disjoint samples of {result.Floor!.Count} vs the " +
                            $"reference; a perfect model's FD)");
                table.AddPlainRow("kernel inception distance",
                    $"{series.Kid} (mean ± sd over {k} seeds; one run's standard error " +
                        $"≈ {series.Runs.Average(r => r.Kid.StandardError):G3})");
                table.AddPlainRow("  each seed", Values(r => r.Kid.Value, "G3"));
                if (series.FloorKid is { } g) table.AddPlainRow("  noise floor", $"{g} ({g.Count} samples)");
            }
            if (m.NumClasses > 0)
            {
                var accuracy = series.ClassAccuracy;
                var real = result.Reference;
                table.AddPlainRow("class accuracy",
                    (series.Runs.Count == 1 ? $"{accuracy.Mean:P1}"
                        : $"{accuracy.Mean:P1} ± {accuracy.StandardDeviation:P1}")
                    + (real is null ? ""
                        : $" (real images: {real.Overall:P1}, the classifier on {real.Count} " +
                            $"labelled reference images)"));
                var perClass = series.PerClassAccuracy;
                for (int c = 0; c < m.NumClasses; c++)
                    table.AddPlainRow($"  {(m.Config.ClassNames is { } names ? names[c] : c.ToString())}",
                        $"{perClass[c]:P1}" + (real is null ? "" : $" (real: {real.PerClass[c]:P1})"));
            }
            table.AddPlainRow("network evaluations / image", $"{result.EvaluationsPerImage:0.#}");
            table.AddPlainRow("ms / image", $"{result.MillisecondsPerImage:0.##}");
            console.Ansi.Write(table);
            return 0;
        }));
        return command;
    }

    /// <summary>Most sampling seeds one eval takes.</summary>
    public const int MaxSeeds = 100;

    /// <summary>
    /// An evaluator over <paramref name="count"/> reference images and, unless <paramref name="floor"/> is "none",
    /// <paramref name="floorSamples"/> × as many floor images (default: the reference's own second sample) where the
    /// floor set has them.
    /// </summary>
    public static Evaluator CreateEvaluator(string reference, string? floor, int count, DiffusionModel m,
        FeatureClassifier features, int floorSamples = 1)
    {
        var (images, n) = Evaluator.LoadReference(reference, count, m.ImageSize);
        var labels = m.NumClasses == features.Classes ? Evaluator.LoadReferenceLabels(reference, n) : null;
        floor ??= Evaluator.DefaultFloor(reference);
        if (floor is null or "none") return new Evaluator(m, features, images, n, referenceLabels: labels);
        var (floorImages, floorCount) = Evaluator.LoadReference(floor,
            (int)Math.Min(int.MaxValue, (long)count * floorSamples), m.ImageSize);
        return new Evaluator(m, features, images, n, floorImages, floorCount, labels);
    }
}
