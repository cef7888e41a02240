using Diffusion.Cli;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Cli.Tests;

/// <summary>Image files through the CLI: any input format and size fitted to the model, JPEG/WebP outputs.</summary>
public class CliImageTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        if (!args.Contains("--model")) args = [.. args, "--model", Cli.Commands.ModelArguments.GaussianModelPath];
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>A 96×60 "photo": gradients, no two rows alike.</summary>
    private static Image8 Photo() =>
        new(96, 60, 3, Enumerable.Range(0, 96 * 60 * 3).Select(i => (byte)(i / 3 % 96 * 2 + i / 288 + i % 3 * 40))
            .ToArray());

    [Theory]
    [InlineData("photo.jpg")]
    [InlineData("photo.webp")]
    [InlineData("photo.png")]
    public void Img2img_fits_a_photo_of_any_size_and_format_to_the_model(string name)
    {
        var dir = Fixtures.TempFolder();
        var photo = Path.Combine(dir, name);
        ImageFile.Save(photo, Photo());
        var outPath = Path.Combine(dir, "out.npy");
        var (code, _, error) = Run("img2img", "--image", photo, "--strength", "0.05", "--steps", "10", "-n", "1",
            "--class", "none", "--out", outPath);
        Assert.True(code == 0, error);
        // at strength 0.05 the output is the input, fitted: centre 60×60 of 96×60, Lanczos3 to 32×32
        var expected = ImageFile.ReadTensor(photo, ImageReadOptions.For(3, 32, 32, "test")).Data;
        var got = Npy.Load(outPath).Data;
        Assert.True(got.Zip(expected, (a, b) => Math.Abs(a - b)).Average() < 0.1);
        var (fitCode, _, fitError) = Run("img2img", "--image", photo, "--resize", "fit", "--background", "white",
            "--filter", "bicubic", "--strength", "0.05", "--steps", "10", "-n", "1", "--class", "none", "--out",
            outPath);
        Assert.True(fitCode == 0, fitError);
        Assert.True(Npy.Load(outPath).Data[0] > 0.8f, "fit pads the top rows with the white background");
    }

    [Theory]
    [InlineData("grid.jpg", "JPEG")]
    [InlineData("grid.webp", "WEBP")]
    public void Jpeg_and_webp_outputs_carry_their_parameters(string name, string format)
    {
        var dir = Fixtures.TempFolder();
        var path = Path.Combine(dir, name);
        var (code, output, error) = Run("sample", "-n", "4", "--steps", "4", "--quality", "80", "--out", path);
        Assert.True(code == 0, error);
        Assert.Contains($"wrote {path}", output);
        Assert.Equal(format, ImageFile.Identify(path).Format.ToUpperInvariant());
        var image = ImageFile.Read(path);
        Assert.Equal(4 * (2 * 32 + 3 * 2), image.Width);
        Assert.Contains("sampler: dpm++2m, steps: 4", image.Text[ImageFile.ParametersKey]);
        Assert.Equal(2, Run("sample", "--quality", "0", "--out", path).Code);
    }

    [Fact]
    public void Scale_filter_chooses_how_outputs_are_enlarged()
    {
        var dir = Fixtures.TempFolder();
        string Sample(string filter)
        {
            var path = Path.Combine(dir, $"{filter}.png");
            var (code, _, error) = Run("sample", "-n", "1", "--steps", "4", "--scale", "3", "--scale-filter", filter,
                "--out", path);
            Assert.True(code == 0, error);
            return path;
        }
        var nearest = ImageFile.Read(Sample("nearest"));
        var smooth = ImageFile.Read(Sample("lanczos3"));
        Assert.Equal((96, 96), (smooth.Width, smooth.Height));
        Assert.NotEqual(nearest.Pixels, smooth.Pixels);
        // nearest: 3×3 blocks of one colour
        Assert.Equal(nearest.Pixels.AsSpan(0, 3).ToArray(), nearest.Pixels.AsSpan(6, 3).ToArray());
    }

    [Fact]
    public void Bad_image_inputs_and_choices_get_one_line_and_no_output()
    {
        var dir = Fixtures.TempFolder();
        var outPath = Path.Combine(dir, "out.png");
        var photo = Path.Combine(dir, "photo.jpg");
        ImageFile.Save(photo, Photo());
        var bytes = File.ReadAllBytes(photo);
        File.WriteAllBytes(photo, bytes[..(bytes.Length / 2)]);
        File.WriteAllText(Path.Combine(dir, "notes.png"), "not an image at all");
        foreach (var (args, code, expected) in new (string[], int, string)[]
        {
            (["img2img", "--image", photo], 1, "is truncated: the JPEG ends before its end-of-image marker"),
            (["img2img", "--image", Path.Combine(dir, "notes.png")], 1, "is not an image in a format read here"),
            (["img2img", "--image", photo, "--resize", "squash"], 2,
                "--resize: 'squash': expected fill, fit, stretch or none."),
            (["inpaint", "--image", photo, "--mask", photo, "--filter", "box"], 2,
                "--filter: 'box': expected lanczos3, bicubic or nearest."),
            (["sample", "--scale-filter", "x"], 2, "--scale-filter: 'x'"),
        })
        {
            var (got, _, error) = Run([.. args, "--out", outPath]);
            Assert.True(got == code, $"{string.Join(" ", args)}: exit {got}: {error}");
            Assert.Contains(expected, error);
            Assert.Equal(1, error.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l.StartsWith("error")));
            Assert.False(File.Exists(outPath));
        }
    }
}
