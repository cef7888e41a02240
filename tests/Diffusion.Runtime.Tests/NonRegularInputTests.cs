using System.Diagnostics;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// Inputs read with a bound decided before reading: a FIFO would block forever and /dev/zero never ends, so every
/// reader refuses what is not a regular file by name, and configs by size, in one line and at once.
/// </summary>
public class NonRegularInputTests
{
    private static string Fifo()
    {
        var path = Path.Combine(Fixtures.TempFolder(), "pipe");
        using var mkfifo = Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
        return path;
    }

    /// <summary>Runs <paramref name="read"/> with a deadline: a regression would block on the FIFO for ever.</summary>
    private static string Refusal(Action read)
    {
        var task = Task.Run(read);
        Assert.True(((IAsyncResult)task).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(20)), "the reader blocked");
        var e = Assert.IsType<DiffusionException>(task.Exception?.InnerException, exactMatch: false);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    [Fact]
    public void Fifos_devices_and_folders_are_refused_by_name_before_they_are_opened()
    {
        var fifo = Fifo();
        Assert.Equal(InputFile.Kind.Fifo, InputFile.KindOf(fifo));
        Assert.Equal(InputFile.Kind.Device, InputFile.KindOf("/dev/zero"));
        Assert.Equal(InputFile.Kind.Directory, InputFile.KindOf("/tmp"));
        Assert.Equal(InputFile.Kind.Regular, InputFile.KindOf("/etc/hostname"));
        foreach (var (path, kind) in new[] { (fifo, "is a named pipe"), ("/dev/zero", "is a device") })
        {
            Assert.Equal($"Model file '{path}' {kind}",
                Refusal(() => DiffusionModel.Load(path)).Split(';')[0]);
            Assert.StartsWith($"Image '{path}' {kind}", Refusal(() => ImageFile.Read(path)));
            Assert.StartsWith($"'{path}' {kind}", Refusal(() => Npy.Load(path)));
            Assert.StartsWith($"'{path}' {kind}",
                Refusal(() => InputFile.ReadAllText(path, InputFile.MaxConfigBytes, $"'{path}'")));
        }
    }

    [Fact]
    public void A_scheduler_config_that_is_a_fifo_or_too_large_is_refused_beside_a_model()
    {
        var dir = Fixtures.TempFolder();
        var model = Path.Combine(dir, "model.onnx");
        File.WriteAllBytes(model, Diffusion.ReferenceModels.GaussianModel.Build(Fixtures.Spec() with
        {
            Config = new DiffusionConfig(), WithMetadata = false,
        }));
        var sidecar = Path.Combine(dir, "scheduler_config.json");
        using (var mkfifo = Process.Start("mkfifo", [sidecar])) mkfifo.WaitForExit();
        Assert.Contains("is a named pipe", Refusal(() => DiffusionModel.Load(model)));
        File.Delete(sidecar);
        File.WriteAllText(sidecar, "{\"x\": \"" + new string('a', 2 << 20) + "\"}");
        Assert.Contains("at most 1,048,576 are read", Refusal(() => DiffusionModel.Load(model)));
    }
}
