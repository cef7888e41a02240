using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Cli.Tests;

/// <summary>The trainer's command line: train, resume, export, bench-train — exit codes and messages.</summary>
public class TrainerCliTests
{
    private static string Folder() => TestFolders.Reserve("trainer-cli");

    [Theory]
    [InlineData("--mults 1,99999999999", "error: --mults: '1,99999999999': expected integers separated by commas.")]
    [InlineData("--batch 2800000", "error: --batch: expected a batch in 1…65536, got 2800000.")]
    [InlineData("--channels 2147483640", "make a level wider than 8192 channels")]
    [InlineData("--res-blocks 100", "at most 8 levels and 16 blocks a level")]
    [InlineData("--weighting min-snr --min-snr-gamma -1", "error: --min-snr-gamma: expected a positive γ, got -1.")]
    public async Task Hostile_train_options_are_usage_errors_before_anything_is_allocated(string options,
        string expected)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        long before = GC.GetTotalMemory(forceFullCollection: false);
        Assert.Equal(2, await Program.Run(["train", "--out", Folder(), "--steps", "1", .. options.Split(' ')], output,
            error));
        Assert.Contains(expected, error.ToString());
        Assert.True(GC.GetTotalMemory(false) - before < 256 << 20, "refused only after allocating");
    }

    [Fact]
    public async Task Bench_train_reports_rate_memory_and_phases_and_refuses_a_missing_python()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(0,
            await Program.Run(["bench-train", "--steps", "2", "--warmup", "0", "--batch", "4", "--profile"], output,
                error));
        var text = output.ToString();
        Assert.Matches(@"[0-9.]+ images/s \(median step [0-9.]+ ms", text);
        Assert.Matches(@"peak resident memory [0-9]+ MiB", text);
        foreach (var phase in new[] { "data", "forward", "backward", "clip", "adamw", "ema" })
            Assert.Contains($"{phase} ", text);
        Assert.Equal(0,
            await Program.Run(["bench-train", "--steps", "1", "--warmup", "0", "--batch", "4", "--precision", "bf16"],
                output, error));
        Assert.Contains("threads, bf16:", output.ToString());
        // the slow-bf16 warning where (and only where) the CPU has no native bfloat16
        Assert.Equal(!TorchSetup.CpuHasBFloat16(), error.ToString().Contains("warning: --precision bf16 on a CPU"));
        Assert.Equal(2, await Program.Run(["bench-train", "--precision", "half"], output, error));
        Assert.Contains("error: --precision: 'half': expected fp32 or bf16.", error.ToString());
        Assert.Equal(1,
            await Program.Run(["bench-train", "--compare", "--python", "/nonexistent/python3"], output, error));
        Assert.Contains("/nonexistent/python3", error.ToString());
        Assert.Equal(2, await Program.Run(["bench-train", "--steps", "0"], output, error));
        Assert.Equal(2, await Program.Run(["bench-train", "--kernels", "--compare"], output, error));
        Assert.Contains("error: --kernels: traces one configuration: leave out --compare.", error.ToString());
    }

    [Fact]
    public async Task Bench_train_kernels_traces_the_convolutions_that_onednn_ran()
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        Assert.Equal(0, await Program.Run(["bench-train", "--steps", "1", "--warmup", "1", "--batch", "4",
            "--threads", "1", "--kernels"], output, error));
        var text = output.ToString();
        // libtorch's float32 convolutions run in oneDNN on x86-64: forward, and both gradients
        Assert.Matches(@"oneDNN in one step \(oneDNN v[0-9.]+ on .+; ONEDNN_VERBOSE=profile_exec, the last 1 of 2 " +
            @"steps, whose mean step took [0-9.]+ ms\):", text);
        foreach (var pass in new[] { "forward_training", "backward_data", "backward_weights" })
            Assert.Matches($@"\| convolution \| [^|]+ \| {pass} \| f32 \|", text);
        var shares = System.Text.RegularExpressions.Regex.Match(text,
            @"\| all of oneDNN \|[ |]+[0-9.]+ \| [0-9.]+ \| ([0-9.]+) % \|\n\| outside oneDNN[^|]+\|[ |]+[0-9.]+ \| " +
            @"(-?[0-9.]+) % \|");
        Assert.True(shares.Success, text);
        Assert.Equal(100, double.Parse(shares.Groups[1].Value) + double.Parse(shares.Groups[2].Value), 0.15);
        Assert.Matches(@"by primitive: convolution [0-9.]+ ms", text);
    }

    [Fact]
    public async Task A_time_limit_ends_the_run_with_a_checkpoint_and_zero_terminal_snr_and_scale_shift_are_kept_in_the_config()
    {
        var folder = Folder();
        var (output, error) = (new StringWriter(), new StringWriter());
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int code = await Program.Run(["train", "--data", "fashion-mnist-test", "--limit", "64", "--out", folder,
            "--steps", "1000000", "--batch", "4",
            "--channels", "8", "--mults", "1,2", "--res-blocks", "1", "--attention", "", "--sample-every", "0",
                "--checkpoint-every", "100000",
            "--prediction", "v_prediction", "--zero-terminal-snr", "--scale-shift", "--time-limit", "0.05"], output,
                error);
        Assert.True(code == 0, error.ToString());
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"took {watch.Elapsed}");
        var info = Checkpoint.ReadInfo(TrainingRun.CheckpointPath(folder));
        Assert.InRange(info.Step, 1, 999_999); // stopped by the clock, checkpointed where it stopped
        Assert.True(info.Config.Diffusion.RescaleBetasZeroSnr);
        Assert.True(info.Config.Net.ScaleShift);
        Assert.Contains($"done: step {info.Step}", output.ToString());
        var refused = Folder();
        Assert.Equal(2, await Program.Run(["train", "--out", refused, "--time-limit", "-1"], output, error));
        Assert.False(Directory.Exists(refused));
    }

    [Fact]
    public async Task Three_1024_pixel_images_with_the_default_net_are_refused_by_the_memory_budget_at_once()
    {
        // The probe's case: 8.5–9 GB before libtorch gave up. The estimate refuses it before anything is allocated.
        var data = TestFolders.Create("big-images");
        for (int i = 0; i < 3; i++)
            Diffusion.Runtime.Imaging.ImageFile.Save(Path.Combine(data, $"{i}.png"),
                new Diffusion.Runtime.Imaging.Image8(1024, 1024, 1, new byte[1024 * 1024]));
        var folder = Folder();
        var (output, error) = (new StringWriter(), new StringWriter());
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int code = await Program.Run(["train", "--data", data, "--out", folder, "--steps", "3"], output, error);
        Assert.Equal(2, code);
        var message = error.ToString().Trim();
        Assert.Single(message.Split('\n'));
        Assert.StartsWith("error: --batch: a step of 64 image(s) of 1×1024×1024 through this UNet (width 32, "
            + "multipliers 1,2,2) keeps about ", message);
        Assert.Contains("GiB of activations for the backward pass, over the budget of ", message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"{watch.Elapsed.TotalSeconds:0} s to refuse");
        Assert.False(File.Exists(Path.Combine(folder, "checkpoint.pt")));
    }

    [Fact]
    public async Task The_trainer_cli_trains_resumes_and_exports()
    {
        var folder = Folder();
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await Program.Run(["train", "--data", "fashion-mnist-test", "--limit", "64", "--out", folder,
            "--steps", "3", "--batch", "4",
            "--channels", "8", "--mults", "1,2", "--res-blocks", "1", "--attention", "", "--sample-every", "0"], output,
                error);
        Assert.True(code == 0, error.ToString());
        Assert.Equal(2, await Program.Run(["train", "--data", "fashion-mnist-test", "--out", folder], output, error));
        Assert.Contains("--resume", error.ToString());
        // a hand-edited log does not stop a resume
        File.AppendAllText(Path.Combine(folder, "loss.csv"), "not,a number\n");
        Assert.Equal(0,
            await Program.Run(["train", "--out", folder, "--resume", "--steps", "5", "--batch", "8"], output, error));
        Assert.Contains("step 5", output.ToString());
        Assert.Contains("ignoring --batch (only --steps, --decay-steps, --lr, --ema, --dropout, --precision, --flip, " +
            "--threads, --time-limit and --processes apply)", error.ToString());
        // An open-ended run is ended with a cool-down chosen on resume, and may change how it optimises from here on;
        // the saved config records the change. A cool-down longer than the run, or a dropout of 1, is refused.
        Assert.Equal(0,
            await Program.Run(["train", "--out", folder, "--resume", "--steps", "7", "--decay-steps", "2", "--lr",
                "1e-3", "--ema", "0.9999", "--dropout", "0", "--precision", "bf16", "--flip"], output, error));
        Assert.Contains("with --steps 7 --decay-steps 2 --lr 0.001 --ema 0.9999 --dropout 0 " +
            "--precision bf16 --flip true", output.ToString());
        Assert.Contains("threads, bf16", output.ToString());
        var saved = Checkpoint.ReadInfo(TrainingRun.CheckpointPath(folder));
        Assert.Equal((7, 7, 2, 1e-3, 0.9999, 0.0, 4),
            (saved.Step, saved.Config.Steps, saved.Config.DecaySteps, saved.Config.LearningRate, saved.Config.EmaDecay,
                saved.Config.Net.Dropout, saved.Config.Batch));
        Assert.Equal(Precision.BFloat16, saved.Config.Precision);
        Assert.True(saved.Config.Flip); // started without flips (the default), turned on here
        Assert.Equal(2,
            await Program.Run(["train", "--out", folder, "--resume", "--steps", "8", "--precision", "fp16"], output,
                error));
        Assert.Contains("error: --precision: 'fp16': expected fp32 or bf16.", error.ToString());
        Assert.Equal(2,
            await Program.Run(["train", "--out", folder, "--resume", "--steps", "8", "--decay-steps", "9"], output,
                error));
        Assert.Contains("error: --decay-steps: expected 0…8", error.ToString());
        Assert.Equal(2,
            await Program.Run(["train", "--out", folder, "--resume", "--steps", "8", "--dropout", "1"], output, error));
        Assert.Contains("error: --dropout: expected a rate in [0, 1), got 1", error.ToString());
        Assert.Equal(7, Checkpoint.ReadInfo(TrainingRun.CheckpointPath(folder)).Step);
        var onnx = Path.Combine(folder, "exported.onnx");
        Assert.Equal(0,
            await Program.Run(["export", "--checkpoint", TrainingRun.CheckpointPath(folder), "--out", onnx, "--ema"],
                output, error));
        using var model = DiffusionModel.Load(onnx);
        Assert.Equal(10, model.NumClasses);
        Assert.False(model.Config.UseKarrasSigmas);
        var karras = Path.Combine(folder, "karras.onnx");
        Assert.Equal(0,
            await Program.Run(["export", "--checkpoint", TrainingRun.CheckpointPath(folder), "--out", karras, "--ema",
                "--use-karras-sigmas", "--timestep-spacing", "leading"], output, error));
        using (var k = DiffusionModel.Load(karras)) Assert.Equal((true, "leading"),
            (k.Config.UseKarrasSigmas, k.Config.TimestepSpacing));
        Assert.Equal(2,
            await Program.Run(["export", "--checkpoint", TrainingRun.CheckpointPath(folder), "--out", karras,
                "--timestep-spacing", "even"], output, error));
        Assert.Contains("error: --timestep-spacing: 'even'", error.ToString());
        // int8: from the float32 file, calibrated on a few images; it says how far it lies from float32.
        var int8 = Path.Combine(folder, "int8.onnx");
        Assert.Equal(0,
            await Program.Run(["export", "--onnx", onnx, "--out", int8, "--precision", "int8", "--calibration-data",
                "fashion-mnist-test", "--calibration-images", "4"], output, error));
        Assert.Contains("export: int8 vs float32 on held-out inputs (", error.ToString());
        using (var q = DiffusionModel.Load(int8)) Assert.Equal(10, q.NumClasses);
        // float32 from a float32 file: written again by this exporter, the same file when it already wrote it
        var again = Path.Combine(folder, "again.onnx");
        Assert.Equal(0, await Program.Run(["export", "--onnx", onnx, "--out", again], output, error));
        Assert.Contains($"export: {onnx} written again by this exporter; its output is within 0.0e+0 of the file's",
            error.ToString());
        Assert.Equal(File.ReadAllBytes(onnx), File.ReadAllBytes(again));
        var refused = Path.Combine(folder, "refused.onnx");
        foreach (var (args, exit, message) in new (string[], int, string)[]
        {
            (["--onnx", onnx, "--precision", "int8", "--ema"], 2,
                "error: --onnx: an ONNX source keeps its weights and config: --ema,"),
            (["--onnx", onnx, "--precision", "int4"], 2, "error: --precision: 'int4': expected fp32 or int8."),
            (["--onnx", onnx, "--precision", "int8", "--calibration-ranges", "entropy"], 2,
                "error: --calibration-ranges: 'entropy': expected mse or minmax."),
            (["--onnx", onnx, "--precision", "int8", "--calibration-images", "0"], 2, "error: --calibration-images:"),
            (["--onnx", int8, "--precision", "int8"], 1, "the model is quantized already; give its float32 file."),
            (["--onnx", Path.Combine(folder, "none.onnx"), "--precision", "int8"], 2, "none.onnx' does not exist."),
        })
        {
            var before = error.ToString().Length;
            Assert.Equal(exit, await Program.Run(["export", "--out", refused, .. args], output, error));
            Assert.Contains(message, error.ToString()[before..]);
            Assert.False(File.Exists(refused), string.Join(' ', args));
        }
        Assert.Equal(1,
            await Program.Run(["export", "--checkpoint", Path.Combine(folder, "nope.pt"), "--out", onnx], output,
                error));
        Assert.Contains("nope.pt", error.ToString());

        // A damaged checkpoint is refused by export and resume alike, and nothing is written.
        var checkpoint = File.ReadAllBytes(TrainingRun.CheckpointPath(folder));
        for (int i = 0; i < 100; i++) checkpoint[checkpoint.Length / 2 + 37 * i] ^= 0x10;
        File.WriteAllBytes(TrainingRun.CheckpointPath(folder), checkpoint);
        var damagedOut = Path.Combine(folder, "damaged.onnx");
        Assert.Equal(1,
            await Program.Run(["export", "--checkpoint", TrainingRun.CheckpointPath(folder), "--out", damagedOut],
                output, error));
        Assert.Equal(1, await Program.Run(["train", "--out", folder, "--resume", "--steps", "6"], output, error));
        Assert.Contains("is damaged", error.ToString());
        Assert.False(File.Exists(damagedOut));
    }
}
