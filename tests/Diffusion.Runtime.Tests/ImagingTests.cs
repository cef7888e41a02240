using System.Buffers.Binary;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Runtime.Tests;

public class ImagingTests
{
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
