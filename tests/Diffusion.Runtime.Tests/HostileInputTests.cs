using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// Hostile files for the readers: each is refused with a message naming it, in bounded memory and time.
/// </summary>
public class HostileInputTests
{
    // ---- PNG ----

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
        { "inflates short", "truncated: its image data holds" },
    };

    [Theory]
    [MemberData(nameof(HostilePngs))]
    public void Hostile_pngs_are_refused_in_bounded_memory_and_time(string name, string expected)
    {
        var data = HostileFiles.Png(name);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<DiffusionException>(() => ImageFile.Decode(data, name));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains(expected, e.Message);
        Assert.Contains(name, e.Message);
        Assert.True(allocated < 16 << 20, $"{name}: {allocated:N0} bytes allocated before refusing");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"{name}: {watch.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public void A_png_bomb_is_refused_from_its_header_before_decoding()
    {
        var data = HostileFiles.Png("46000² gray bomb");
        var e = Assert.Throws<DiffusionException>(() =>
            ImageFile.Decode(data, "big.png", ImageReadOptions.For(1, 32, 32, "model 'm.onnx'")));
        Assert.Equal("'big.png' is 46000×46000 = 2,116,000,000 pixels; image inputs are limited to 16,777,216 pixels.",
            e.Message);
    }

    // ---- .npy ----

    private static byte[] Npy(string header, int major = 1, uint? claimedLength = null, int dataBytes = 0)
    {
        var h = Encoding.ASCII.GetBytes(header + "\n");
        var preamble = major == 1
            ? new byte[]
            {
                0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)h.Length,
                (byte)(h.Length >> 8),
            }
            : [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0,
                .. BitConverter.GetBytes(claimedLength ?? (uint)h.Length)];
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
        "header length 0xFFFFFFF0" =>
            Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", major: 2, claimedLength: 0xFFFFFFF0),
        "fortran order without spaces" => Npy("{'descr':'<f4','fortran_order':True,'shape':(1,1,2,2),}", dataBytes: 16),
        "shape product overflows" =>
            Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2000000000, 2000000000, " +
                "2000000000, 2000000000), }"),
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
}
