using System.Buffers.Binary;
using Diffusion.Runtime.Imaging;
using FsCheck.Fluent;

namespace Diffusion.Runtime.Tests;

public class ImagingTests
{
    [Fact]
    public void Png_round_trips_gray_rgb_and_rgba()
    {
        var property = Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), (byte[] seed) =>
        {
            foreach (var channels in new[] { 1, 3, 4 })
            {
                int w = 1 + seed.Length % 13, h = 1 + seed.Length % 7;
                var pixels = new byte[w * h * channels];
                for (int i = 0; i < pixels.Length; i++)
                    pixels[i] = seed.Length == 0 ? (byte)i : (byte)(seed[i % seed.Length] + i);
                using var ms = new MemoryStream();
                Png.Write(ms, new Image8(w, h, channels, pixels));
                var back = Png.Decode(ms.ToArray(), "memory");
                if (back.Width != w || back.Height != h || back.Channels != channels
                    || !back.Pixels.AsSpan().SequenceEqual(pixels))
                    return false;
            }
            return true;
        });
        FsCheck.Check.QuickThrowOnFailure(property);
    }

    [Fact]
    public void Png_chunks_carry_the_standard_crc()
    {
        using var ms = new MemoryStream();
        Png.Write(ms, new Image8(2, 2, 1, [0, 64, 128, 255]));
        var bytes = ms.ToArray();
        // Every PNG ends with the IEND chunk, whose CRC-32 is the well-known AE 42 60 82.
        Assert.Equal(new byte[] { 0, 0, 0, 0, (byte)'I', (byte)'E', (byte)'N', (byte)'D', 0xAE, 0x42, 0x60, 0x82 },
            bytes[^12..]);
        Assert.Equal(13, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(8)));
    }

    [Fact]
    public void Broken_pngs_get_errors_naming_the_file()
    {
        using var ms = new MemoryStream();
        Png.Write(ms, new Image8(4, 4, 3, new byte[48]));
        var bytes = ms.ToArray();
        Assert.Contains("not a PNG",
            Assert.Throws<DiffusionException>(() => Png.Decode(bytes.AsSpan(1), "a.png")).Message);
        Assert.Contains("a.png",
            Assert.Throws<DiffusionException>(() => Png.Decode(bytes.AsSpan(0, 40), "a.png")).Message);
    }

    [Fact]
    public void Images_map_between_data_range_and_bytes()
    {
        float[] chw = [-1f, 0f, 1f, 2f, -3f, 0.5f]; // 2 channels of 1×3
        var image = ImageGrid.ToImage(chw, 2, 1, 3);
        Assert.Equal(new byte[] { 0, 255, 128, 0, 255, 191 }, image.Pixels);
        var back = ImageGrid.FromImage(image);
        Assert.Equal(-1f, back[0]);
        Assert.Equal(1f, back[2]);
    }

    [Fact]
    public void Grid_places_each_image_in_its_cell()
    {
        var images = new float[5 * 2 * 2];
        for (int n = 0; n < 5; n++) images.AsSpan(n * 4, 4).Fill(n / 4f * 2 - 1);
        var grid = ImageGrid.Tile(images, 5, 1, 2, 2, columns: 3, padding: 1);
        Assert.Equal(3 * 2 + 4, grid.Width);
        Assert.Equal(2 * 2 + 3, grid.Height);
        Assert.Equal(0, grid.Pixels[0]); // padding
        Assert.Equal(0, grid.Pixels[1 * grid.Width + 1]); // image 0 = −1
        Assert.Equal(255, grid.Pixels[4 * grid.Width + 4]); // image 4 (row 1, column 1) = +1
    }

    [Fact]
    public void Npy_round_trips_and_its_header_is_aligned()
    {
        var dir = Fixtures.TempFolder();
        var path = Path.Combine(dir, "x.npy");
        var data = Enumerable.Range(0, 24).Select(i => i * 0.25f - 3).ToArray();
        Npy.Save(path, data, 2, 3, 2, 2);
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(0, (10 + BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8))) % 64);
        var back = Npy.Load(path);
        Assert.Equal(new[] { 2, 3, 2, 2 }, back.Shape);
        Assert.Equal(data, back.Data);
        Assert.Single(Directory.GetFiles(dir)); // no temp file left behind
    }

    [Fact]
    public void Truncated_or_foreign_npy_files_are_rejected()
    {
        var dir = Fixtures.TempFolder();
        var path = Path.Combine(dir, "x.npy");
        Npy.Save(path, new float[8], 2, 4);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^5]);
        Assert.Contains("truncated", Assert.Throws<DiffusionException>(() => Npy.Load(path)).Message);
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("not a .npy", Assert.Throws<DiffusionException>(() => Npy.Load(path)).Message);
    }
}
