using System.Diagnostics;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Training;
using TorchSharp;

namespace Diffusion.Trainer.Cli.Tests;

/// <summary>
/// Data-parallel training on Open MPI: N ranks follow the one-process run; faults end every rank with a message.
/// </summary>
public class DistributedTests
{
    private static string Trainer => Path.Combine(AppContext.BaseDirectory, "diffusion.dll");

    /// <summary>A small run with dropout off (dropout draws would differ by shard), checkpointed at its end.</summary>
    private static string[] Small(string folder, int steps, int batch = 32) =>
        ["train", "--out", folder, "--data", "fashion-mnist-test", "--limit", "256", "--channels", "16", "--mults", "1,2", "--attention", "",
         "--steps", $"{steps}", "--batch", $"{batch}", "--dropout", "0", "--checkpoint-every", "10", "--sample-every",
             "0"];

    /// <summary>
    /// Runs the trainer in a process of its own: libtorch's default generator (initial weights) is process-wide, and
    /// other tests training in this process at the same time would draw from it too.
    /// </summary>
    private static async Task Train(string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[Trainer, .. arguments]) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {await error}{output}");
    }

    /// <summary>Largest |Δ| of any weight over the largest |w| (raw weights, then EMA weights).</summary>
    private static double RelativeDifference(string a, string b)
    {
        double worst = 0;
        foreach (var ema in new[] { false, true })
        {
            var (netA, _) = TrainingRun.LoadNetwork(TrainingRun.CheckpointPath(a), ema);
            var (netB, _) = TrainingRun.LoadNetwork(TrainingRun.CheckpointPath(b), ema);
            using (netA)
            using (netB)
            {
                var pa = netA.parameters().ToArray();
                var pb = netB.parameters().ToArray();
                Assert.Equal(pa.Length, pb.Length);
                for (int i = 0; i < pa.Length; i++)
                {
                    double scale = Math.Max(pa[i].abs().max().item<float>(), 1e-6);
                    worst = Math.Max(worst, (pa[i] - pb[i]).abs().max().item<float>() / scale);
                }
            }
        }
        return worst;
    }

    private static float[] Sample(string folder)
    {
        var (net, config) = TrainingRun.LoadNetwork(TrainingRun.CheckpointPath(folder), ema: true);
        using var _ = net;
        using var model = DiffusionModel.Load(Export.UNetExporter.ToOnnx(net, config), folder);
        return new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "ddim", Steps = 10, Count = 8, BatchSize = 8, ClassLabels = [3],
        }).Images;
    }

    [Fact]
    public async Task Two_ranks_end_with_the_weights_and_images_of_one_process_at_the_same_global_batch()
    {
        string one = TestFolders.Reserve("mpi-1"), two = TestFolders.Reserve("mpi-2");
        await Train(Small(one, 20));
        await Train([.. Small(two, 20), "--processes", "2"]);
        double weights = RelativeDifference(one, two);
        Assert.True(weights <= 1e-4, $"weights differ by {weights:E2} of their scale");
        double images = Sample(one).Zip(Sample(two), (x, y) => Math.Abs(x - y)).Max();
        Assert.True(images <= 1e-3, $"images differ by {images:E2}");
        Assert.Equal(File.ReadAllLines(Path.Combine(one, "loss.csv")).Length,
            File.ReadAllLines(Path.Combine(two, "loss.csv")).Length);
    }

    [Fact]
    public async Task A_run_of_two_ranks_resumes_with_one_and_continues_the_same_curve()
    {
        string straight = TestFolders.Reserve("mpi-straight"), resumed = TestFolders.Reserve("mpi-resumed");
        await Train(Small(straight, 20));
        await Train([.. Small(resumed, 10), "--processes", "2"]);
        await Train(["train", "--out", resumed, "--resume", "--steps", "20"]);
        double weights = RelativeDifference(straight, resumed);
        Assert.True(weights <= 1e-4, $"weights differ by {weights:E2} of their scale");
        var a = File.ReadAllLines(Path.Combine(straight, "loss.csv")).Skip(1).Select(l =>
            double.Parse(l.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var b = File.ReadAllLines(Path.Combine(resumed, "loss.csv")).Skip(1).Select(l =>
            double.Parse(l.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(20, b.Length);
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - b[i]) <= 1e-4 * Math.Abs(a[i]), $"step {i + 1}: loss {b[i]} vs {a[i]}");
    }

    /// <summary>mpirun with one command line per rank (MPMD), as a user starting ranks by hand might.</summary>
    private static (int Code, string Output) Mpirun(string[][] ranks, TimeSpan timeout,
        Action<Process>? whileRunning = null, string[]? workingDirectories = null)
    {
        var start = new ProcessStartInfo("mpirun") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["--bind-to", "none", "--oversubscribe", "--allow-run-as-root"])
            start.ArgumentList.Add(a);
        for (int r = 0; r < ranks.Length; r++)
        {
            if (r > 0) start.ArgumentList.Add(":");
            string[] where = workingDirectories is null ? [] : ["-wdir", workingDirectories[r]];
            foreach (var a in (string[])["-np", "1", .. where, "dotnet", Trainer, .. ranks[r]]) start.ArgumentList.Add(a);
        }
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        whileRunning?.Invoke(process);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"mpirun still ran after {timeout.TotalSeconds} s: {output.Result}{error.Result}");
        }
        return (process.ExitCode, output.Result + error.Result);
    }

    [Fact]
    public void Ranks_started_with_different_options_fail_before_the_first_step()
    {
        var folder = TestFolders.Reserve("mpi-mismatch");
        var (code, output) = Mpirun([[.. Small(folder, 20), "--lr", "1e-4"], [.. Small(folder, 20), "--lr", "2e-4"]],
            TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, code);
        Assert.Contains("Rank 1 was started with other training options than rank 0", output);
        Assert.DoesNotContain("   at ", output);
        Assert.False(File.Exists(TrainingRun.CheckpointPath(folder)));
    }

    [Fact]
    public void Ranks_whose_data_differ_under_one_command_line_fail_before_the_first_step()
    {
        // One command line, two hosts' worth of files: --data names a relative folder that holds 8 images in one
        // rank's working folder and 3 in the other's.
        var folder = TestFolders.Reserve("mpi-data");
        string[] hosts = [TestFolders.Create("mpi-host-a"), TestFolders.Create("mpi-host-b")];
        for (int h = 0; h < 2; h++)
        {
            Directory.CreateDirectory(Path.Combine(hosts[h], "images"));
            for (int i = 0; i < (h == 0 ? 8 : 3); i++)
                Diffusion.Runtime.Imaging.ImageFile.Save(Path.Combine(hosts[h], "images", $"{i}.png"),
                    new Diffusion.Runtime.Imaging.Image8(8, 8, 1, Enumerable.Repeat((byte)(i * 20), 64).ToArray()));
        }
        string[] arguments = ["train", "--out", folder, "--data", "images", "--channels", "8", "--mults", "1,2",
            "--attention", "", "--steps", "5", "--batch", "2", "--sample-every", "0"];
        var (code, output) = Mpirun([arguments, arguments], TimeSpan.FromSeconds(60), workingDirectories: hosts);
        Assert.NotEqual(0, code);
        Assert.Contains("Rank 1 read other data than rank 0 from 'images' (3 images of 1×8×8, SHA-256 ", output);
        Assert.Contains("rank 0: 8 images of 1×8×8", output);
        Assert.DoesNotContain("   at ", output);
        Assert.False(File.Exists(TrainingRun.CheckpointPath(folder)));
    }

    [Fact]
    public void A_rank_killed_mid_run_ends_every_rank_and_the_last_checkpoint_stays_loadable()
    {
        var folder = TestFolders.Reserve("mpi-kill");
        var arguments = Small(folder, 100000).Select(a => a == "10" ? "1" : a).ToArray(); // a checkpoint every step
        var watch = new Stopwatch();
        var (code, output) = Mpirun([arguments, arguments], TimeSpan.FromSeconds(120), mpirun =>
        {
            var checkpoint = TrainingRun.CheckpointPath(folder);
            var until = Stopwatch.StartNew();
            while (!File.Exists(checkpoint) && until.Elapsed < TimeSpan.FromSeconds(90)) Thread.Sleep(50);
            Assert.True(File.Exists(checkpoint), "the run never wrote a checkpoint");
            // Rank 1 is the dotnet process whose environment says OMPI_COMM_WORLD_RANK=1.
            var rank1 = Process.GetProcessesByName("dotnet").FirstOrDefault(p =>
                File.Exists($"/proc/{p.Id}/environ")
                    && File.ReadAllText($"/proc/{p.Id}/environ").Split('\0').Contains("OMPI_COMM_WORLD_RANK=1")
                && File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(folder));
            Assert.NotNull(rank1);
            rank1!.Kill(); // SIGKILL
            watch.Start();
        });
        watch.Stop();
        Assert.NotEqual(0, code);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30),
            $"the other rank took {watch.Elapsed.TotalSeconds:0} s to end");
        Assert.Contains("signal 9", output); // mpirun names the rank and the signal
        Assert.True(Checkpoint.ReadInfo(TrainingRun.CheckpointPath(folder)).Step >= 1);
        var (net, _) = TrainingRun.LoadNetwork(TrainingRun.CheckpointPath(folder), ema: true);
        net.Dispose();
    }

    [Fact]
    public async Task Two_ranks_in_two_network_namespaces_match_one_process_and_talk_over_their_link()
    {
        // Two machines without a cluster: trainer/Diffusion.Trainer/Distributed/two-hosts.sh (needs root, as the tmpfs
        // tests do).
        string one = TestFolders.Reserve("netns-1"), two = TestFolders.Reserve("netns-2");
        await Train(Small(one, 20));
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[Path.Combine(AppContext.BaseDirectory, "two-hosts.sh"), "dotnet", Trainer,
            .. Small(two, 20), "--threads", "1"])
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {output}{await error}");
        double weights = RelativeDifference(one, two);
        Assert.True(weights <= 1e-4, $"weights differ by {weights:E2} of their scale");
        // Each side sent at least its 20 gradient buffers (4 bytes × 231 809 parameters) over the veth pair.
        var sent = System.Text.RegularExpressions.Regex.Matches(output, @"sent (\d+)").Select(m =>
            long.Parse(m.Groups[1].Value)).ToArray();
        Assert.Equal(2, sent.Length);
        Assert.All(sent, bytes =>
            Assert.True(bytes >= 20L * 4 * 231_809, $"only {bytes} bytes crossed the link: {output}"));
    }

    [Theory]
    [InlineData("train --out r --processes 2", "mpi")]
    [InlineData("train --processes=4 --steps 10", "mpi")]
    [InlineData("train --processes 1", "")]
    [InlineData("train --out r --steps 2", "")]
    [InlineData("train --processes", "")]
    [InlineData("train --processes two", "")]
    [InlineData("train --out 2 --steps 3", "")]
    public void The_launch_script_installs_Open_MPI_only_for_more_than_one_process(string args, string expected)
    {
        // ./diffusion train installs what the command needs on a fresh machine: Open MPI only when --processes N > 1.
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"source '{Path.Combine(TestFolders.Repository, "runtime", "bootstrap.sh")}' && " +
            $"needs_mpi {args}");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(expected, output.Trim());
    }

    [Fact]
    public void Processes_without_mpirun_is_one_clear_line()
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[Trainer, .. Small(TestFolders.Reserve("mpi-none"), 2), "--processes", "2"])
            start.ArgumentList.Add(a);
        // dotnet, but no mpirun
        start.Environment["PATH"] = Path.GetDirectoryName(Environment.ProcessPath) ?? "/usr/bin/none";
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(1, process.ExitCode);
        Assert.Equal("error: --processes: needs Open MPI's mpirun, which is not installed: apt-get install " +
            "openmpi-bin libopenmpi-dev.", error.Trim());
    }
}
