using System.Text;
using Diffusion.Runtime.Imaging;
using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Tests;

/// <summary>
/// The checkpoint container: round trip, and every kind of damage refused with a message naming the file.
/// </summary>
public class CheckpointTests
{
    private static readonly CheckpointInfo Info = new(42, new TrainConfig { Batch = 7 }, ["a", "b"], 0.125);

    private static string Folder()
    {
        return TestFolders.Create("checkpoint-tests");
    }

    private static string Write(string folder, byte[] payload)
    {
        var path = Path.Combine(folder, "checkpoint.pt");
        Checkpoint.Save(path, Info, w => w.Write(payload));
        return path;
    }

    private static byte[] ReadBack(string path)
    {
        byte[]? payload = null;
        Checkpoint.Read(path, (_, r) => payload = r.ReadBytes(1000));
        return payload!;
    }

    [Fact]
    public void Header_and_payload_round_trip()
    {
        var payload = Enumerable.Range(0, 1000).Select(i => (byte)(i * 7)).ToArray();
        var path = Write(Folder(), payload);
        var info = Checkpoint.ReadInfo(path);
        Assert.Equal((42, 7, 0.125), (info.Step, info.Config.Batch, info.LastLoss));
        Assert.Equal(["a", "b"], info.ClassNames);
        Assert.Equal(payload, ReadBack(path));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, TemporaryFiles.Pattern(path)));
    }

    [Fact]
    public void Any_flipped_byte_is_refused_never_read()
    {
        var path = Write(Folder(), new byte[1000]);
        var original = File.ReadAllBytes(path);
        var random = new Random(1);
        var offsets = Enumerable.Range(0, 40).Select(_ =>
            random.Next(original.Length)).Concat([0, 8, 12, 20, original.Length - 1]);
        foreach (var offset in offsets)
        {
            var damaged = (byte[])original.Clone();
            damaged[offset] ^= (byte)(1 << random.Next(8));
            File.WriteAllBytes(path, damaged);
            var e = Assert.Throws<DiffusionException>(() => ReadBack(path));
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void Truncated_hostile_and_foreign_files_get_one_clear_message()
    {
        var folder = Folder();
        var path = Write(folder, new byte[1000]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 10)]);
        Assert.Contains("truncated", Assert.Throws<DiffusionException>(() => Checkpoint.ReadInfo(path)).Message);

        var huge = (byte[])bytes.Clone();
        BitConverter.GetBytes(int.MaxValue).CopyTo(huge, 12); // header length
        File.WriteAllBytes(path, huge);
        Assert.Contains("header claims", Assert.Throws<DiffusionException>(() => Checkpoint.ReadInfo(path)).Message);

        var oldTrainer = Path.Combine(folder, "old.pt");
        File.WriteAllBytes(oldTrainer, [.. "PK\u0003\u0004"u8, .. new byte[200]]); // torch::save's zip archive
        Assert.Contains("earlier libtorch-shim trainer",
            Assert.Throws<DiffusionException>(() => Checkpoint.ReadInfo(oldTrainer)).Message);

        var text = Path.Combine(folder, "notes.pt");
        File.WriteAllText(text, "hello");
        Assert.Contains("not a Diffusion for .NET checkpoint",
            Assert.Throws<DiffusionException>(() => Checkpoint.ReadInfo(text)).Message);
        Assert.Throws<FileNotFoundException>(() => Checkpoint.ReadInfo(Path.Combine(folder, "missing.pt")));
    }

    public static TheoryData<string, CheckpointInfo, string> HostileHeaders => new()
    {
        { "NormGroups 0", Info with { Config = Info.Config with { Net = new() { NormGroups = 0 } } },
            "NormGroups: expected a positive number of groups, got 0." },
        { "BaseChannels 1048576", Info with { Config = Info.Config with { Net = new() { BaseChannels = 1 << 20 } } },
            "1048576 channels × multipliers 1,2,2 make a level wider than 8192 channels." },
        { "Step -5", Info with { Step = -5 }, "Step: expected 0…10000 (the run's steps), got -5." },
        { "LearningRate -1", Info with { Config = Info.Config with { LearningRate = -1 } },
            "LearningRate: expected a positive number, got -1." },
        { "NumTrainTimesteps 1", Info with
            {
                Config = Info.Config with { Diffusion = Info.Config.Diffusion with { NumTrainTimesteps = 1 } },
            }, "num_train_timesteps must lie in 2…" },
        { "no config", Info with { Config = null! }, "its config or class names are missing." },
        { "no network", Info with { Config = Info.Config with { Net = null! } },
            "the network, diffusion, data and device settings must all be given." },
    };

    [Theory]
    [MemberData(nameof(HostileHeaders))]
    public void A_header_with_a_recomputed_checksum_is_still_range_checked(string what, CheckpointInfo info,
        string problem)
    {
        // Save writes a valid SHA-256 over whatever it is given: what someone rewriting a header would produce.
        var path = Path.Combine(Folder(), "checkpoint.pt");
        Checkpoint.Save(path, info, w => w.Write(new byte[16]));
        var e = Assert.Throws<DiffusionException>(() => Checkpoint.ReadInfo(path));
        Assert.True(e.Message.StartsWith($"Checkpoint '{path}' has a header no training run writes: ")
            && e.Message.Contains(problem), $"{what}: {e.Message}");
    }

    [Fact]
    public void A_payload_that_does_not_fit_the_network_is_refused()
    {
        var path = Write(Folder(), new byte[1000]);
        Assert.Contains("more than its network reads",
            Assert.Throws<DiffusionException>(() => Checkpoint.Read(path, (_, r) => r.ReadBytes(10))).Message);
        Assert.Contains("does not fit its network",
            Assert.Throws<DiffusionException>(() =>
                Checkpoint.Read(path, (_, r) => { r.ReadBytes(1000); r.ReadInt32(); })).Message);
        Assert.Contains("Mismatched tensor shape",
            Assert.Throws<DiffusionException>(() =>
                Checkpoint.Read(path, (_, _) => throw new ArgumentException("Mismatched tensor shape"))).Message);
    }

    [Fact]
    public void A_failed_write_keeps_the_previous_checkpoint_and_leaves_no_temporary()
    {
        var folder = Folder();
        var path = Write(folder, Encoding.UTF8.GetBytes(new string('x', 1000)));
        var e = Assert.Throws<IOException>(() =>
            Checkpoint.Save(path, Info with { Step = 43 }, w =>
            {
                w.Write(new byte[100]); throw new IOException("No space left on device");
            }));
        Assert.Contains("previous checkpoint", e.Message);
        Assert.Equal(42, Checkpoint.ReadInfo(path).Step);
        Assert.Empty(Directory.GetFiles(folder, TemporaryFiles.Pattern(path)));
    }

    [Fact]
    public void Temporaries_of_killed_writers_are_removed_at_the_next_save()
    {
        var folder = Folder();
        var path = Path.Combine(folder, "checkpoint.pt");
        var token = new string('a', 32);
        var dead = Path.Combine(folder, $".checkpoint.pt~diffusion-tmp.{int.MaxValue - 1}.{token}"); // no such process
        // init: a writer that may still be running
        var alive = Path.Combine(folder, $".checkpoint.pt~diffusion-tmp.1.{token}");
        // names a user might give, in the old form or near the new one: never ours
        string[] users = [".checkpoint.pt.2147483646.0123.tmp", $".checkpoint.pt~diffusion-tmp.{int.MaxValue - 1}.x"];
        foreach (var f in users.Append(dead).Append(alive)) File.WriteAllText(Path.Combine(folder, f), "x");
        Write(folder, new byte[1000]);
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(alive));
        Assert.All(users, f => Assert.True(File.Exists(Path.Combine(folder, f)), f));
    }
}
