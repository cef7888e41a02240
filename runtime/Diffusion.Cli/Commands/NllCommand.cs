using System.CommandLine;
using System.Globalization;
using System.Text;
using Diffusion.Cli.Output;
using Diffusion.Evaluation.Likelihood;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;
using Spectre.Console;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>nll</c>: negative log-likelihood of data under a model in bits/dim, from the variational bound
/// (<see cref="VariationalBound"/>) or the probability-flow ODE (<see cref="OdeLikelihood"/>, divergence by central
/// differences on the ONNX model); the last line is <c>bits/dim: X ± SE</c>.
/// </summary>
public static class NllCommand
{
    /// <summary>The two likelihoods.</summary>
    public enum Method
    {
        /// <summary>The variational bound (Ho et al. 2020; improved-diffusion's calc_bpd_loop).</summary>
        Vlb,
        /// <summary>The probability-flow ODE (Song et al. 2021).</summary>
        Ode,
    }

    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new ModelArguments();
        var data = new Option<string>("--data")
        {
            DefaultValueFactory = _ => "fashion-mnist-test",
            Description = "fashion-mnist-test, fashion-mnist, an IDX images file or a folder of images (8-bit data), " +
                "or a float32 .npy [N,C,H,W] in [−1, 1] (continuous data).",
        };
        var method = new ChoiceOption<Method>("--method",
            "vlb: the variational bound; ode: the probability-flow ODE with Hutchinson–Skilling probes", Method.Vlb);
        var count = new Option<int>("--count", "-n")
        {
            DefaultValueFactory = _ => 100, Description = "Images measured (the first N of the data).",
        };
        var timesteps = new Option<string>("--timesteps")
        {
            DefaultValueFactory = _ => "all",
            Description = "vlb: all (every one of the T terms) or K (the decoder plus K KL terms per image, one " +
                "from each of K geometric strata of t: an unbiased estimate).",
        };
        var terms = new Option<string?>("--terms")
        {
            Description = "vlb: write each timestep's mean term (bits/dim) to this CSV (t, bits_per_dim, draws; the " +
                "prior as t = T).",
        };
        var probes = new Option<int>("--probes")
        {
            DefaultValueFactory = _ => 1, Description = "ode: Hutchinson–Skilling probes per image.",
        };
        var probe = new ChoiceOption<ProbeKind>("--probe", "ode: the probes' distribution", ProbeKind.Rademacher);
        var defaults = new OdeOptions();
        var rtol = new Option<double>("--rtol")
        {
            DefaultValueFactory = _ => defaults.RelativeTolerance,
            Description = "ode: Dormand–Prince relative tolerance.",
        };
        var atol = new Option<double>("--atol")
        {
            DefaultValueFactory = _ => defaults.AbsoluteTolerance,
            Description = "ode: Dormand–Prince absolute tolerance.",
        };
        var step = new Option<double>("--fd-step")
        {
            DefaultValueFactory = _ => defaults.DifferenceStep,
            Description = "ode: δ of the central difference that stands in for the network's Jacobian–vector product " +
                "(h = δσ; error O(δ²)).",
        };
        var batch = new Option<int>("--batch")
        {
            DefaultValueFactory = _ => 64,
            Description = "Network rows per call (vlb: (image, t) pairs; ode: images × " +
                "(1 + 2·probes)).",
        };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0 };
        var command = new Command("nll",
            "Negative log-likelihood of data in bits/dim: the variational bound or the probability-flow ODE.")
        {
            data, method.Option, count, timesteps, terms, probes, probe.Option, rtol, atol, step, batch, seed,
        };
        model.AddTo(command);
        command.SetAction((p, cancellation) => console.Guard(async () =>
        {
            var which = method.Value(p);
            int? sampled = ParseTimesteps(p.GetValue(timesteps)!);
            if (p.GetValue(terms) is not null && which != Method.Vlb)
                throw new DiffusionArgumentException("--terms",
                    "the per-timestep terms are the bound's: use --method vlb.");
            using var m = model.Load(p);
            var images = LikelihoodData.Load(p.GetValue(data)!, p.GetValue(count), m.Shape);
            var lines = new ProgressLines(console.Error, "nll");
            var progress = new Progress<(long Done, long Total)>(d =>
                lines.Report((double)d.Done / d.Total,
                    $"{d.Done}/{d.Total} {(which == Method.Vlb ? "rows" : "images")}"));
            var table = new Table().AddColumns("", "");
            table.AddPlainRow("data", $"{images.Source}: {images.Count} images {images.Shape}, " +
                (images.Discrete ? "8-bit (bins of 2/255)" : "continuous (a density)"));
            LikelihoodEstimate total;
            if (which == Method.Vlb)
            {
                var result = await Task.Run(() => VariationalBound.Evaluate(m, images, new BoundOptions
                {
                    SampledTimesteps = sampled, Seed = p.GetValue(seed), BatchSize = p.GetValue(batch),
                }, progress, cancellation), cancellation);
                total = result.Total;
                Describe(table, result, m.Schedule.TrainTimesteps, m.Config.VarianceType, sampled);
                if (p.GetValue(terms) is { } csv) WriteTerms(csv, result);
            }
            else
            {
                var options = new OdeOptions
                {
                    Probes = p.GetValue(probes), Probe = probe.Value(p), RelativeTolerance = p.GetValue(rtol),
                    AbsoluteTolerance = p.GetValue(atol), DifferenceStep = p.GetValue(step), Seed = p.GetValue(seed),
                    BatchSize = p.GetValue(batch),
                };
                var result = await Task.Run(() => OdeLikelihood.Evaluate(m, images, options, progress, cancellation),
                    cancellation);
                total = result.Total;
                table.AddPlainRow("method", ($"probability-flow ODE, σ {result.SigmaMin:G3} → " +
                    $"{result.SigmaMax:G4}, Dormand–Prince rtol {options.RelativeTolerance:G2} atol " +
                        $"{options.AbsoluteTolerance:G2}; {options.Probes} " +
                            $"{ChoiceOption<ProbeKind>.Name(options.Probe)} " +
                            $"probe(s), central differences δ = {options.DifferenceStep:G2}" +
                                (images.Discrete ? "; uniform dequantization" : "")));
                table.AddPlainRow("probe spread", ($"{result.ProbeStandardDeviation:0.0000} bits/dim " +
                    (options.Probes > 1 ? "(sd of one probe's estimate within an image)"
                        : "(one probe: not measured)")));
                table.AddPlainRow("NFE", ($"{result.EvaluationsPerImage:0.#} ODE slopes per image, each " +
                    $"{1 + 2 * options.Probes} network rows ({result.NetworkRows:N0} rows in all)"));
                table.AddPlainRow("wall time", ($"{result.Time.TotalSeconds:0.0} s " +
                    $"({result.Time.TotalMilliseconds / images.Count:0} ms per image)"));
            }
            console.Ansi.Write(table);
            console.Out.WriteLine(($"bits/dim: {total.BitsPerDim:0.0000} ± {total.StandardError:0.0000}"));
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static int? ParseTimesteps(string text)
    {
        if (text == "all") return null;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int k) && k >= 1
            ? k : throw new DiffusionArgumentException("--timesteps",
                $"expected 'all' or a positive number of draws, got '{Printable.Of(text, 40)}'.");
    }

    /// <summary>
    /// The bound's total and where its bits lie: the prior, the decoder, and the KL terms by decade of t.
    /// </summary>
    private static void Describe(Table table, BoundResult r, int T, string variance, int? sampled)
    {
        table.AddPlainRow("method", $"variational bound, T = {T}, Σ_t {variance}, " + (sampled is int k
            ? $"decoder + {k} stratified KL terms per image (unbiased estimate)" : "every timestep"));
        table.AddPlainRow("prior L_T", ($"{r.PriorBitsPerDim:0.0000} bits/dim"));
        table.AddPlainRow("decoder L_0 (t = 0)", ($"{r.TermBitsPerDim[0]:0.0000} bits/dim" +
            (r.Discrete ? " (discretized Gaussian)" : " (Gaussian density)")));
        for (int lo = 1; lo < T; lo *= 10)
        {
            int hi = Math.Min(T - 1, lo * 10 - 1);
            double sum = 0;
            int drawn = 0;
            for (int t = lo; t <= hi; t++)
                if (r.TermDraws[t] > 0) { sum += r.TermBitsPerDim[t]; drawn++; }
            // with sampled timesteps, the decade's sum is estimated from the terms drawn in it
            double bits = drawn == 0 ? double.NaN : sum * (hi - lo + 1) / drawn;
            table.AddPlainRow($"KL terms t = {lo}…{hi}", ($"{bits:0.0000} bits/dim") +
                (sampled is null ? "" : $" ({drawn} of {hi - lo + 1} timesteps drawn)"));
        }
        table.AddPlainRow("network rows", ($"{r.NetworkRows:N0} ({r.NetworkRows / (double)r.Total.Count:0} " +
            $"per image)"));
        table.AddPlainRow("wall time", ($"{r.Time.TotalSeconds:0.0} s " +
            $"({r.Time.TotalMilliseconds / r.Total.Count:0} ms per image)"));
    }

    private static void WriteTerms(string path, BoundResult r)
    {
        var text = new StringBuilder("t,bits_per_dim,draws\n");
        for (int t = 0; t < r.TermBitsPerDim.Length; t++)
            text.Append(($"{t},{r.TermBitsPerDim[t]:R},{r.TermDraws[t]}\n"));
        text.Append(($"{r.TermBitsPerDim.Length},{r.PriorBitsPerDim:R},{r.Total.Count}\n"));
        AtomicFile.Write(path, s => s.Write(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
