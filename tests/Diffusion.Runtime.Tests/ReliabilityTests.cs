using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Diffusion.Cli;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// Hostile inputs and faults: every case is one clear line and a handled exit code (1 or 2), never a stack trace,
/// memory bounded by what the request needs, and nothing half-written.
/// </summary>
public class ReliabilityTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        if (args[0] is "sample" or "img2img" or "inpaint" or "interpolate" && !args.Contains("--model"))
            args = [.. args, "--model", Cli.Commands.ModelArguments.GaussianModelPath];
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }

    private static void AssertHandled((int Code, string Out, string Err) r, int expectedCode, string expected, string what)
    {
        Assert.True(r.Code == expectedCode, $"{what}: exit {r.Code}, expected {expectedCode}: {r.Err}");
        Assert.Contains(expected, r.Err);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.DoesNotContain("internal error", r.Err);
        Assert.True(r.Err.Trim().Split('\n').Length <= 2, $"{what}: more than an error line and a help pointer: {r.Err}");
    }

    // ---- PNG ----

    private static byte[] Chunk(string type, ReadOnlySpan<byte> body, bool goodCrc = true)
    {
        var bytes = new byte[12 + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, body.Length);
        Encoding.ASCII.GetBytes(type, bytes.AsSpan(4));
        body.CopyTo(bytes.AsSpan(8));
        uint crc = Crc(bytes.AsSpan(4, 4 + body.Length));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8 + body.Length), goodCrc ? crc : crc ^ 1);
        return bytes;
    }

    private static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return c ^ 0xFFFFFFFF;
    }

    private static byte[] Ihdr(uint width, uint height, byte colorType = 0, int length = 13)
    {
        var body = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(body, width);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(4), height);
        body[8] = 8;
        body[9] = colorType;
        return Chunk("IHDR", body.AsSpan(0, length));
    }

    /// <summary>A "decompression bomb": zlib data that inflates to <paramref name="rawBytes"/> zeros, compressed to almost nothing.</summary>
    private static byte[] ZeroIdat(long rawBytes)
    {
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var zeros = new byte[1 << 20];
            for (long left = rawBytes; left > 0; left -= zeros.Length) z.Write(zeros, 0, (int)Math.Min(zeros.Length, left));
        }
        return Chunk("IDAT", compressed.ToArray());
    }

    private static byte[] Png(params byte[][] chunks) => [137, 80, 78, 71, 13, 10, 26, 10, .. chunks.SelectMany(c => c), .. Chunk("IEND", [])];

    public static TheoryData<string, string> HostilePngs => new()
    {
        { "short IHDR", "IHDR holds 5 bytes" },
        { "65536² IHDR", "65536×65536" },
        { "30000² palette bomb", "30000×30000" },
        { "46000² gray bomb", "46000×46000" },
        { "bad CRC", "fails its CRC" },
        { "IDAT before IHDR", "first chunk must be IHDR" },
        { "zero width", "invalid image size" },
        { "truncated", "truncated" },
        { "unknown critical chunk", "unknown critical chunk 'ABCD'" },
        { "16-bit", "only 8-bit" },
        { "inflates short", "corrupt or truncated" },
    };

    private static byte[] HostilePng(string name) => name switch
    {
        "short IHDR" => Png(Ihdr(8, 8, length: 5)),
        "65536² IHDR" => Png(Ihdr(65536, 65536), ZeroIdat(100)),
        "30000² palette bomb" => Png(Ihdr(30000, 30000, colorType: 3), Chunk("PLTE", new byte[768]), ZeroIdat(30001L * 300)),
        "46000² gray bomb" => Png(Ihdr(46000, 46000), ZeroIdat(46001L * 2000)),
        "bad CRC" => [137, 80, 78, 71, 13, 10, 26, 10, .. Ihdr(4, 4).Take(21), .. Chunk("IDAT", [1, 2, 3], goodCrc: false)],
        "IDAT before IHDR" => Png(ZeroIdat(20), Ihdr(4, 4)),
        "zero width" => Png(Ihdr(0, 4), ZeroIdat(20)),
        "truncated" => Png(Ihdr(4, 4), ZeroIdat(20))[..40],
        "unknown critical chunk" => Png(Ihdr(4, 4), Chunk("ABCD", [1]), ZeroIdat(20)),
        "16-bit" => Png(Patch(Ihdr(4, 4), 16, 16), ZeroIdat(40)),
        "inflates short" => Png(Ihdr(64, 64), ZeroIdat(100)),
        _ => throw new ArgumentException(name),
    };

    /// <summary>A chunk with one body byte changed and its CRC recomputed.</summary>
    private static byte[] Patch(byte[] chunk, int offset, byte value)
    {
        var body = chunk.AsSpan(8, chunk.Length - 12).ToArray();
        body[offset - 8] = value;
        return Chunk(Encoding.ASCII.GetString(chunk, 4, 4), body);
    }

    [Theory]
    [MemberData(nameof(HostilePngs))]
    public void Hostile_pngs_are_refused_in_bounded_memory_and_time(string name, string expected)
    {
        var data = HostilePng(name);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<DiffusionException>(() => Imaging.Png.Decode(data, name));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains(expected, e.Message);
        Assert.Contains(name, e.Message);
        Assert.True(allocated < 16 << 20, $"{name}: {allocated:N0} bytes allocated before refusing");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"{name}: {watch.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public void A_png_of_the_wrong_size_is_refused_from_its_header_before_decoding()
    {
        var data = HostilePng("46000² gray bomb");
        var e = Assert.Throws<DiffusionException>(() => Imaging.Png.Decode(data, "big.png", PngLimits.Exactly(32, 32, "model 'm.onnx'")));
        Assert.Equal("'big.png' is 46000×46000; model 'm.onnx' needs 32×32 images.", e.Message);
        var dir = Fixtures.TempFolder();
        File.WriteAllBytes(Path.Combine(dir, "big.png"), data);
        AssertHandled(Run("img2img", "--image", Path.Combine(dir, "big.png"), "--out", Path.Combine(dir, "x.png")), 1, "needs 32×32 images", "img2img with a bomb");
        Assert.False(File.Exists(Path.Combine(dir, "x.png")));
    }

    // ---- .npy ----

    private static byte[] Npy(string header, int major = 1, uint? claimedLength = null, int dataBytes = 0)
    {
        var h = Encoding.ASCII.GetBytes(header + "\n");
        var preamble = major == 1
            ? new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)h.Length, (byte)(h.Length >> 8) }
            : [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0, .. BitConverter.GetBytes(claimedLength ?? (uint)h.Length)];
        return [.. preamble, .. h, .. new byte[dataBytes]];
    }

    public static TheoryData<string, string> HostileNpys => new()
    {
        { "dimension over 2³¹", "shape entry '3000000000'" },
        { "fractional shape", "shape entry '2.5'" },
        { "header length 0xFFFFFFF0", "claims 4294967280 header bytes" },
        { "fortran order without spaces", "Fortran-ordered" },
        { "shape product overflows", "more values than fit" },
        { "truncated data", "is it truncated" },
        { "negative dimension", "shape entry '-4'" },
        { "unsupported dtype", "dtype '<i8'" },
        { "not npy", "bad magic" },
    };

    private static byte[] HostileNpy(string name) => name switch
    {
        "dimension over 2³¹" => Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3000000000, 1, 2, 2), }"),
        "fractional shape" => Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2.5, 1, 2, 2), }"),
        "header length 0xFFFFFFF0" => Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", major: 2, claimedLength: 0xFFFFFFF0),
        "fortran order without spaces" => Npy("{'descr':'<f4','fortran_order':True,'shape':(1,1,2,2),}", dataBytes: 16),
        "shape product overflows" => Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2000000000, 2000000000, 2000000000, 2000000000), }"),
        "truncated data" => Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", dataBytes: 7),
        "negative dimension" => Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-4, 1, 2, 2), }"),
        "unsupported dtype" => Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", dataBytes: 8),
        "not npy" => Encoding.ASCII.GetBytes("hello, world"),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(HostileNpys))]
    public void Hostile_npy_files_are_refused_in_bounded_memory(string name, string expected)
    {
        var path = Path.Combine(Fixtures.TempFolder(), "x.npy");
        File.WriteAllBytes(path, HostileNpy(name));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DiffusionException>(() => Imaging.Npy.Load(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20, $"{name}: allocated too much");
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    // ---- sizes from the command line ----

    [Fact]
    public void Overflowing_counts_and_sizes_are_usage_errors_before_any_work()
    {
        var dir = Fixtures.TempFolder();
        var image = Path.Combine(dir, "one.png");
        Assert.Equal(0, Run("sample", "--class", "red", "-n", "1", "--steps", "2", "--out", image).Code);
        var watch = Stopwatch.StartNew();
        (string[] Args, string Expected)[] cases =
        [
            (["img2img", "--image", image, "--count", "-1", "--out", Path.Combine(dir, "a.png")], "--count"),
            (["sample", "--karras", "--steps", "2147483647", "--out", Path.Combine(dir, "b.png")], "--steps"),
            (["interpolate", "--from", "1", "--to", "2", "--frames", "2000000000", "--out", Path.Combine(dir, "c.png")], "--frames"),
            (["eval", "--count", "-1"], "--count"),
            (["bench", "--count", "0", "--out", Path.Combine(dir, "bench")], "--count"),
            (["sample", "--count", "9000000", "--steps", "2", "--out", Path.Combine(dir, "d.npy")], "2³¹"),
            (["sample", "--threads", "100000", "--out", Path.Combine(dir, "e.png")], "--threads 100000"),
            (["sample", "--sampler", "dpm++2m", "--eta", "0.5", "--out", Path.Combine(dir, "f.png")], "--eta does not apply to the dpm++2m sampler"),
            (["sample", "--sampler", "ddim", "--snr", "0.2", "--out", Path.Combine(dir, "g.png")], "--snr does not apply"),
            (["sample", "--cuda-option", "gpu_mem_limit=1", "--out", Path.Combine(dir, "h.png")], "--cuda-option applies only with --device cuda"),
            (["sample", "--columns", "-3", "--out", Path.Combine(dir, "i.png")], "--columns"),
            (["schedules", "--timesteps", "2000000000", "--out", Path.Combine(dir, "s")], "--timesteps"),
            (["gaussian-model", "--size", "50000", "--out", Path.Combine(dir, "g.onnx")], "--size"),
            (["bench-runtime", "--batches", "1,x"], "--batches '1,x'"),
        ];
        foreach (var (args, expected) in cases) AssertHandled(Run(args), 2, expected, string.Join(' ', args));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"the refusals took {watch.Elapsed.TotalSeconds:0} s: something sampled first");
        Assert.Equal(["one.png"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        // A huge --columns is clamped to the image count, not a 2³¹-pixel-wide grid.
        var wide = Path.Combine(dir, "wide.png");
        Assert.Equal(0, Run("sample", "-n", "3", "--steps", "2", "--columns", "100000000", "--out", wide).Code);
        Assert.Equal(3 * 32 + 4 * 2, Imaging.Png.Read(wide).Width);
    }

    [Fact]
    public void Hostile_configs_and_unwritable_outputs_are_failures_with_one_line()
    {
        var dir = Fixtures.TempFolder();
        var config = Path.Combine(dir, "scheduler_config.json");
        File.WriteAllText(config, """{"sample_size": 50000, "in_channels": 3}""");
        AssertHandled(Run("sample", "--config", config, "--out", Path.Combine(dir, "a.png")), 1, "sample_size must be two sides in 1…16384", "sample_size 50000");
        File.WriteAllText(config, """{"beta_start": 0.02, "beta_end": 0.0001}""");
        AssertHandled(Run("sample", "--config", config, "--out", Path.Combine(dir, "a.png")), 1, "beta_start (0.02) is above beta_end", "beta_start > beta_end");
        File.WriteAllText(config, """{"num_train_timesteps": 2000000000}""");
        AssertHandled(Run("sample", "--config", config, "--out", Path.Combine(dir, "a.png")), 1, "num_train_timesteps must lie in", "huge T");
        var file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "");
        AssertHandled(Run("schedules", "--out", Path.Combine(file, "plots")), 1, "cannot create or write the folder", "schedules under a file");
        AssertHandled(Run("bench", "--out", Path.Combine(file, "report")), 1, "cannot create or write the folder", "bench under a file");
        AssertHandled(Run("sample", "--out", Path.Combine(file, "x.png")), 1, "cannot write into folder", "sample under a file");
        Assert.Equal(["a-file", "scheduler_config.json"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void An_explicit_config_overrides_the_models_metadata_and_info_says_so()
    {
        var dir = Fixtures.TempFolder();
        var config = Path.Combine(dir, "override.json");
        File.WriteAllText(config, """{"prediction_type": "sample", "sample_size": 32, "in_channels": 3, "num_classes": 4, "class_names": ["red", "green", "blue", "yellow"]}""");
        var (code, output, error) = Run("info", "--model", Cli.Commands.ModelArguments.GaussianModelPath, "--config", config);
        Assert.True(code == 0, error);
        var flat = string.Concat(output.Where(c => !char.IsWhiteSpace(c) && c != '│'));
        Assert.Contains($"--config{config}(overridesthemodel's'diffusion.config'metadata)", flat);
        Assert.Contains("prediction_typesample", flat);
    }

    // ---- outputs: nothing half-written, nothing mixed ----

    [Fact]
    public void A_folder_output_replaces_an_earlier_run_whole_and_refuses_foreign_files()
    {
        var dir = Fixtures.TempFolder();
        var folder = Path.Combine(dir, "imgs") + "/";
        Assert.Equal(0, Run("sample", "-n", "5", "--steps", "2", "--out", folder).Code);
        Assert.Equal(5, Directory.GetFiles(folder).Length);
        Assert.Equal(0, Run("sample", "-n", "2", "--steps", "2", "--out", folder).Code);
        Assert.Equal(["0000.png", "0001.png"], Directory.GetFiles(folder).Select(Path.GetFileName).Order()); // no stale 0002…0004
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "mine");
        AssertHandled(Run("sample", "-n", "2", "--steps", "2", "--out", folder), 2, "notes.txt", "foreign file in the output folder");
        Assert.Equal(["imgs"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName)); // no temporary folders left
        // A killed run's temporary folder is removed by the next run.
        var stale = Path.Combine(dir, $"imgs.tmp-{int.MaxValue - 1}-abc");
        Directory.CreateDirectory(stale);
        File.Delete(Path.Combine(folder, "notes.txt"));
        Assert.Equal(0, Run("sample", "-n", "1", "--steps", "2", "--out", folder).Code);
        Assert.False(Directory.Exists(stale));
    }

    [Fact]
    public void A_full_disk_leaves_no_partial_output()
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "diffusion.dll");
        var model = Cli.Commands.ModelArguments.GaussianModelPath;
        // 64 images of 32×32 RGB noise-like samples (≈ 3 KB each as PNG) do not fit a 96 KiB tmpfs.
        var script = $"""
            set -e
            disk="$(mktemp -d)"
            mount -t tmpfs -o size=96k tmpfs "$disk"
            set +e
            dotnet '{cli}' sample --model '{model}' -n 64 --steps 2 --sampler ddpm --out "$disk/imgs/" 2>&1; echo "exit=$?"
            dotnet '{cli}' sample --model '{model}' -n 64 --steps 2 --sampler ddpm --out "$disk/grid.png" 2>&1; echo "exit=$?"
            echo "left: $(ls -A "$disk" | tr '\n' ' ')"
            umount "$disk"; rmdir "$disk"
            """;
        var (ok, output) = TinyDisk.RunScript(script);
        Assert.True(ok, $"no tmpfs could be mounted here (needs root or user namespaces): {output}");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Count(l => l == "exit=1"));
        Assert.Equal(2, lines.Count(l => l.StartsWith("error: ", StringComparison.Ordinal) && l.Contains("No space left on device")));
        Assert.DoesNotContain("   at ", output);
        Assert.Contains("left: \n", output + "\n"); // nothing at all: no imgs/, no temporaries, no grid
    }
}
