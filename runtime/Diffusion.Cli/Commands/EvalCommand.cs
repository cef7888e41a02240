using Diffusion.Cli.Output;
using Diffusion.Runtime;
using System.CommandLine;
using Diffusion.Evaluation;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Spectre.Console;

namespace Diffusion.Cli.Commands;

/// <summary><c>eval</c>: Fréchet distance of generated images to the test set in the classifier's feature space, and class accuracy.</summary>
public static class EvalCommand
{
    /// <summary>The shipped quality classifier.</summary>
    public static string DefaultClassifier => Path.Combine(AppContext.BaseDirectory, "models", "fashion-mnist", "classifier.onnx");

    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new ModelArguments();
        var classifier = new Option<string?>("--classifier") { Description = "Feature classifier .onnx (default: the shipped Fashion-MNIST one)." };
        var reference = new Option<string>("--reference") { DefaultValueFactory = _ => "fashion-mnist-test", Description = "Reference images: fashion-mnist-test, an IDX file or a .npy." };
        var floor = new Option<string?>("--floor-reference") { Description = "A second sample of the data for the noise floor (default: fashion-mnist, the training set, with fashion-mnist-test; none: no floor)." };
        var sampler = new Option<string?>("--sampler", "-s") { Description = "Sampler; default: the model's diffusers scheduler when its config names one, else dpm++2m." };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 20 };
        var count = new Option<int>("--count", "-n") { DefaultValueFactory = _ => 1000, Description = "Generated and reference images." };
        var guidance = new Option<float>("--guidance", "-g") { DefaultValueFactory = _ => 1 };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 100 };
        var karras = new Option<bool?>("--karras") { Description = "Karras et al.'s σ grid (ρ = 7); --karras false forces timesteps. Default: the model's use_karras_sigmas." };
        var command = new Command("eval", "Fréchet distance (classifier features) and class accuracy of generated images.")
        {
            classifier, reference, floor, sampler, steps, count, guidance, seed, batch, karras,
        };
        model.AddTo(command);
        command.SetAction((p, cancellation) => console.Guard(async () =>
        {
            if (p.GetValue(sampler) is { } name && !SampleCommand.IsDiffusers(name)) SamplerRegistry.Create(name);
            if (p.GetValue(count) <= 0) throw new DiffusionArgumentException($"--count must be a positive number of images, got {p.GetValue(count)}.");
            using var m = model.Load(p);
            using var features = new FeatureClassifier(p.GetValue(classifier) ?? DefaultClassifier, m.Settings);
            var evaluator = CreateEvaluator(p.GetValue(reference)!, p.GetValue(floor), p.GetValue(count), m, features);
            var result = await Task.Run(() => evaluator.Evaluate(new GenerationRequest
            {
                Sampler = p.GetValue(sampler), Steps = p.GetValue(steps), Count = p.GetValue(count), Seed = p.GetValue(seed),
                BatchSize = p.GetValue(batch), Guidance = p.GetValue(guidance), KarrasSigmas = p.GetValue(karras),
            }, cancellation, new ProgressLines(console.Error, "eval")), cancellation);
            var table = new Table().AddColumns("metric", "value");
            int n = Math.Min(result.Count, evaluator.ReferenceCount);
            table.AddPlainRow("Fréchet distance", $"{result.FrechetDistance:0.###} ({result.Count} generated vs {n} reference)");
            if (result.Floor is { } f) table.AddPlainRow("  noise floor", $"{f.FrechetDistance:0.###} ({f.Count} reference vs {f.Count} of a second sample; a perfect model's FD at this count)");
            table.AddPlainRow("kernel inception distance", $"{result.Kid} (unbiased: ≈ 0 for a perfect model at any count)");
            if (result.Floor is { } g) table.AddPlainRow("  noise floor", g.Kid.ToString());
            if (m.NumClasses > 0)
            {
                table.AddPlainRow("class accuracy", $"{result.ClassAccuracy:P1}");
                for (int c = 0; c < m.NumClasses; c++)
                    table.AddPlainRow($"  {(m.Config.ClassNames is { } names ? names[c] : c.ToString())}", $"{result.PerClassAccuracy[c]:P1}");
            }
            table.AddPlainRow("network evaluations / image", $"{result.EvaluationsPerImage:0.#}");
            table.AddPlainRow("ms / image", $"{result.MillisecondsPerImage:0.##}");
            console.Ansi.Write(table);
            return 0;
        }));
        return command;
    }

    /// <summary>An evaluator over <paramref name="count"/> reference images and, unless <paramref name="floor"/> is "none", as many floor images (default: the reference's own second sample).</summary>
    public static Evaluator CreateEvaluator(string reference, string? floor, int count, DiffusionModel m, FeatureClassifier features)
    {
        var (images, n) = Evaluator.LoadReference(reference, count, m.ImageSize);
        floor ??= Evaluator.DefaultFloor(reference);
        if (floor is null or "none") return new Evaluator(m, features, images, n);
        var (floorImages, floorCount) = Evaluator.LoadReference(floor, count, m.ImageSize);
        return new Evaluator(m, features, images, n, floorImages, floorCount);
    }
}
