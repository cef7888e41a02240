using Diffusion.Cli.Output;
using Diffusion.Runtime;
using System.CommandLine;
using Diffusion.Evaluation.Charts;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Cli.Commands;

/// <summary><c>schedules --out DIR</c>: SVG plots of β(t), ᾱ(t), √(1−ᾱ) and log-SNR for the beta schedules.</summary>
public static class SchedulesCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var output = new Option<string>("--out", "-o") { Required = true, Description = "Folder for the SVG files." };
        var timesteps = new Option<int>("--timesteps") { DefaultValueFactory = _ => 1000 };
        var command = new Command("schedules",
            "Plot β(t), ᾱ(t), √(1−ᾱ) and log-SNR of the linear, cosine, quadratic and sigmoid schedules.")
            {
                output, timesteps,
            };
        command.SetAction((p, _) => console.Guard(() =>
        {
            int t = p.GetValue(timesteps);
            if (t is < 2 or > 100_000)
                throw new DiffusionArgumentException("--timesteps", $"must lie in 2…100000, got {t}.");
            var folder = OutputFolder.Create(p.GetValue(output)!, "--out");
            var schedules = new (string Name, NoiseSchedule Schedule)[]
            {
                ("linear", NoiseSchedule.Create(BetaScheduleKind.Linear, t, 1e-4, 0.02)),
                ("cosine", NoiseSchedule.Create(BetaScheduleKind.SquaredCosCapV2, t, 1e-4, 0.02)),
                ("quadratic", NoiseSchedule.Create(BetaScheduleKind.Quadratic, t, 1e-4, 0.02)),
                ("sigmoid", NoiseSchedule.Create(BetaScheduleKind.Sigmoid, t, 1e-4, 0.02)),
            };
            var plots = new (string File, string Title, string YLabel, Func<NoiseSchedule, int, double> Value)[]
            {
                ("beta.svg", "β(t)", "β", (s, i) => s.Betas[i]),
                ("alpha_bar.svg", "ᾱ(t) = ∏(1 − β)", "ᾱ", (s, i) => s.AlphasCumprod[i]),
                ("sigma_vp.svg", "√(1 − ᾱ(t)): noise scale of x_t", "√(1 − ᾱ)", (s, i) =>
                    Math.Sqrt(1 - s.AlphasCumprod[i])),
                ("log_snr.svg", "log SNR(t) = log(ᾱ/(1 − ᾱ))", "log SNR", (s, i) =>
                    Math.Log(s.AlphasCumprod[i] / (1 - s.AlphasCumprod[i]))),
            };
            foreach (var (file, title, yLabel, value) in plots)
            {
                var series = schedules.Select(s =>
                    new Series(s.Name, Enumerable.Range(0, t).Where(i => i % Math.Max(1, t / 250) == 0 || i == t - 1)
                    .Select(i => ((double)i, value(s.Schedule, i))).ToList())).ToList();
                var svg = new SvgLineChart
                {
                    Title = $"{title}, T = {t}, β ∈ [1e−4, 0.02]", XLabel = "timestep t",
                    YLabel = yLabel,
                }.Render(series);
                AtomicFile.Write(Path.Combine(folder, file), s => s.Write(System.Text.Encoding.UTF8.GetBytes(svg)));
            }
            console.Out.WriteLine($"wrote {string.Join(", ", plots.Select(p => p.File))} in {folder}");
            return Task.FromResult(0);
        }));
        return command;
    }
}
