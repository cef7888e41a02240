using System.Diagnostics;
using Diffusion.Runtime.Imaging;
using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Cli.Tests;

/// <summary>
/// Training killed mid-checkpoint, and training onto a full disk: the last checkpoint stays loadable, nothing
/// half-written stays.
/// </summary>
public class FaultTests
{
    private static string Trainer => Path.Combine(AppContext.BaseDirectory, "diffusion.dll");

    private static readonly string[] Tiny =
        ["--data", "fashion-mnist-test", "--limit", "64", "--batch", "4", "--mults", "1,2", "--res-blocks", "1", "--attention", "", "--sample-every", "0", "--checkpoint-every", "1"];

    [Fact]
    public async Task A_run_killed_while_writing_a_checkpoint_resumes_from_the_last_complete_one()
    {
        var folder = TestFolders.Reserve("fault-kill");
        var checkpoint = TrainingRun.CheckpointPath(folder);
        int killedMidWrite = 0;
        for (int attempt = 0; attempt < 4 && killedMidWrite < 2; attempt++)
        {
            // A 2.4 M-parameter net: each checkpoint (weights, EMA, two AdamW moments) is ≈ 40 MB, a wide window to be
            // killed in.
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in (string[])[Trainer, "train", "--out", folder, .. File.Exists(checkpoint)
                ? ["--resume", "--steps", "100000"] : (string[])["--steps", "100000", "--channels", "64", .. Tiny]])
                start.ArgumentList.Add(a);
            using var process = Process.Start(start)!;
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            var watch = Stopwatch.StartNew();
            bool killed = false;
            while (!process.HasExited && watch.Elapsed < TimeSpan.FromSeconds(60))
            {
                if (File.Exists(checkpoint) && Directory.Exists(folder)
                    && Directory.EnumerateFiles(folder, TemporaryFiles.Pattern(checkpoint)).Any())
                {
                    process.Kill(entireProcessTree: true); // SIGKILL: no finally blocks, no cleanup
                    killed = true;
                    break;
                }
                Thread.Sleep(1);
            }
            await process.WaitForExitAsync();
            Assert.True(killed, $"the trainer exited ({process.ExitCode}) or never wrote a second checkpoint");
            if (Directory.EnumerateFiles(folder, TemporaryFiles.Pattern(checkpoint)).Any()) killedMidWrite++;
            // whatever the moment of the kill, the checkpoint is a whole one
            var info = Checkpoint.ReadInfo(checkpoint);
            Assert.True(info.Step >= 1);
        }
        Assert.True(killedMidWrite >= 1, "no kill landed inside a checkpoint write; the test proved nothing");
        // The next run removes the dead writer's temporary and continues from the intact checkpoint.
        int before = Checkpoint.ReadInfo(checkpoint).Step;
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.True(await Program.Run(["train", "--out", folder, "--resume", "--steps", $"{before + 2}"], output,
            error) == 0, error.ToString());
        Assert.Equal(before + 2, Checkpoint.ReadInfo(checkpoint).Step);
        Assert.Empty(Directory.EnumerateFiles(folder, TemporaryFiles.Pattern(checkpoint)));
    }

    [Fact]
    public void Training_onto_a_full_disk_fails_with_one_line_and_leaves_no_temporary()
    {
        // Base 16 channels: ≈ 160 k parameters, a ≈ 2.6 MB checkpoint that a 1 MiB tmpfs cannot take.
        var script = $"""
            set -e
            disk="$(mktemp -d)"
            mount -t tmpfs -o size=1m tmpfs "$disk"
            set +e
            dotnet '{Trainer}' train --out "$disk/run" --steps 2 --channels 16 {string.Join(' ', Tiny.Select(a => $"'{a}'"))} 2>&1; echo "exit=$?"
            echo "left: $(ls -A "$disk/run" | tr '\n' ' ')"
            umount "$disk"; rmdir "$disk"
            """;
        var (ok, output) = TinyDisk.RunScript(script);
        Assert.True(ok, $"no tmpfs could be mounted here (needs root or user namespaces): {output}");
        Assert.Contains("exit=1", output);
        Assert.Contains("error: Writing checkpoint", output);
        Assert.Contains("No space left on device", output);
        Assert.Contains("the previous checkpoint, if any, is intact", output);
        Assert.DoesNotContain("   at ", output);
        // no temporary, no half checkpoint: only the run folder's lock (held by no process now)
        Assert.Contains("left: .train.lock \n", output + "\n");
    }
}
