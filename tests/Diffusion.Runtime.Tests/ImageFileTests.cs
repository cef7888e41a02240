using System.Text;
using Diffusion.Runtime.Imaging;
using FsCheck.Fluent;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// Images in and out through ImageSharp, checked against files ImageSharp's encoders wrote and against values worked
/// out by hand (compositing, luma, cropping, orientation, 16-bit range).
/// </summary>
public class ImageFileTests
{
    private static Image8 Decode(byte[] data, ImageReadOptions? options = null) =>
        ImageFile.Decode(data, "test", options);

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
                ImageFile.Write(ms, new Image8(w, h, channels, pixels));
                var back = Decode(ms.ToArray(), new ImageReadOptions { Channels = channels });
                if (back.Width != w || back.Height != h || !back.Pixels.AsSpan().SequenceEqual(pixels)) return false;
            }
            return true;
        });
        FsCheck.Check.QuickThrowOnFailure(property);
    }

    [Fact]
    public void Stored_channels_are_what_the_file_holds()
    {
        byte[] Png(int channels, byte[] pixels)
        {
            using var ms = new MemoryStream();
            ImageFile.Write(ms, new Image8(2, 1, channels, pixels));
            return ms.ToArray();
        }
        Assert.Equal(1, Decode(Png(1, [7, 200])).Channels);
        Assert.Equal(3, Decode(Png(3, [7, 7, 7, 200, 200, 200])).Channels); // an RGB file of gray pixels
        Assert.Equal(3, Decode(Png(4, [7, 7, 8, 255, 1, 2, 3, 255])).Channels); // RGBA, every pixel opaque
        Assert.Equal(4, Decode(Png(4, [7, 7, 8, 255, 1, 2, 3, 254])).Channels);
        using var pattern = ImageFixtures.Pattern(8, 8);
        var gray = ImageFixtures.Encode(pattern, new JpegEncoder { ColorType = JpegColorType.Luminance });
        Assert.Equal(1, Decode(gray).Channels);
        var dir = Fixtures.TempFolder();
        File.WriteAllBytes(Path.Combine(dir, "g.jpg"), gray);
        Assert.Equal(new ImageFileInfo("JPEG", 8, 8, Gray: true), ImageFile.Identify(Path.Combine(dir, "g.jpg")));
    }

    [Fact]
    public void Png_text_is_kept_as_plain_text_chunks()
    {
        var text = new Dictionary<string, string>
        {
            [ImageFile.ParametersKey] = "model: m.onnx, sampler: ddim, " + new string('x', 3000), ["Software"] = "ünï",
            ["note"] = "σ ≈ 0.5 — not Latin-1",
        };
        using var ms = new MemoryStream();
        ImageFile.Write(ms, new Image8(1, 1, 1, [9]) { Text = text });
        var bytes = ms.ToArray();
        // uncompressed tEXt as before, so any reader finds it; iTXt (UTF-8) only where Latin-1 cannot hold the text
        Assert.Contains("tEXtparameters\0model: m.onnx", Encoding.Latin1.GetString(bytes));
        Assert.Contains("iTXtnote", Encoding.Latin1.GetString(bytes));
        Assert.DoesNotContain("zTXt", Encoding.Latin1.GetString(bytes));
        Assert.Equal(text, Decode(bytes).Text);
    }

    [Theory]
    [InlineData(".jpg", 3, 6.0)]
    [InlineData(".jpg", 1, 4.0)]
    [InlineData(".webp", 3, 6.0)]
    [InlineData(".webp", 4, 6.0)]
    public void Jpeg_and_webp_outputs_read_back_close_with_their_parameters(string extension, int channels,
        double maxMeanError)
    {
        var dir = Fixtures.TempFolder();
        // smooth gradients (what lossy codecs keep), a different one per channel
        var image = new Image8(48, 40, channels, Enumerable.Range(0, 48 * 40 * channels)
            .Select(i => (byte)(i / channels % 48 * (2 + i % channels) + i / channels / 48 * 2)).ToArray())
        {
            Text = new Dictionary<string, string> { [ImageFile.ParametersKey] = "seed: 7, σ: 0.5" },
        };
        var path = Path.Combine(dir, "out" + extension);
        ImageFile.Save(path, image);
        var back = ImageFile.Read(path, new ImageReadOptions { Channels = channels });
        Assert.Equal((48, 40), (back.Width, back.Height));
        double error = back.Pixels.Zip(image.Pixels, (a, b) => Math.Abs(a - b)).Average();
        Assert.True(error < maxMeanError, $"mean |error| {error:0.00}");
        Assert.Equal("seed: 7, σ: 0.5", back.Text[ImageFile.ParametersKey]);
        ImageFile.Save(Path.Combine(dir, "lossless.webp"), image, quality: 100);
        Assert.Equal(image.Pixels,
            ImageFile.Read(Path.Combine(dir, "lossless.webp"), new ImageReadOptions { Channels = channels }).Pixels);
    }

    [Fact]
    public void Every_input_format_decodes_to_the_pixels_its_encoder_wrote()
    {
        using var pattern = ImageFixtures.Pattern(20, 12);
        var expected = new byte[20 * 12 * 4];
        pattern.CopyPixelDataTo(expected);
        var rgb = Enumerable.Range(0, 20 * 12 * 3).Select(i => expected[i / 3 * 4 + i % 3]).ToArray();
        foreach (var (name, _, encoder, lossless) in ImageFixtures.Encoders)
        {
            var data = ImageFixtures.Encode(pattern, encoder);
            var back = Decode(data, new ImageReadOptions { Channels = 3 });
            Assert.Equal((20, 12), (back.Width, back.Height));
            // gray, palette and lossy encoders change the pixels: compared with what ImageSharp alone decodes then
            var reference = rgb;
            if (!lossless)
            {
                using var plain = Image.Load<Rgb24>(data);
                reference = new byte[20 * 12 * 3];
                plain.CopyPixelDataTo(reference);
            }
            Assert.True(back.Pixels.AsSpan().SequenceEqual(reference), name);
        }
    }

    [Fact]
    public void Sixteen_bit_pngs_keep_their_full_range_in_model_inputs()
    {
        using var image = new Image<L16>(4, 1);
        ushort[] values = [0, 256, 257, 65535];
        for (int x = 0; x < 4; x++) image[x, 0] = new L16(values[x]);
        var data = ImageFixtures.Encode(image, new PngEncoder { BitDepth = PngBitDepth.Bit16 });
        var tensor = ImageFile.DecodeTensor(data, "deep.png", ImageReadOptions.For(1, 4, 1, "test"));
        Assert.Equal(values.Select(v => v / 32767.5f - 1).ToArray(), tensor.Data);
        Assert.NotEqual(tensor.Data[1], tensor.Data[2]); // 8 bits would make 256 and 257 one value
        Assert.Equal(new byte[] { 0, 1, 1, 255 }, Decode(data).Pixels); // rounded to 8 bits where bytes are asked
    }

    [Fact]
    public void Transparency_is_composited_on_the_chosen_background()
    {
        using var image = new Image<Rgba32>(1, 1);
        image[0, 0] = new Rgba32(200, 100, 50, 128);
        var data = ImageFixtures.Encode(image, new PngEncoder());
        // c·a/255 + bg·(255 − a)/255, rounded: by hand
        Assert.Equal(new byte[] { 100, 50, 25 }, Decode(data, new ImageReadOptions { Channels = 3 }).Pixels);
        Assert.Equal(new byte[] { 227, 177, 152 },
            Decode(data, new ImageReadOptions { Channels = 3, Background = Background.White }).Pixels);
        Assert.Equal(new byte[] { 200, 100, 50, 128 }, Decode(data, new ImageReadOptions { Channels = 4 }).Pixels);
    }

    [Fact]
    public void Gray_is_the_bt709_luma_of_the_colour()
    {
        using var image = new Image<Rgb24>(3, 1);
        image[0, 0] = new Rgb24(255, 0, 0);
        image[1, 0] = new Rgb24(0, 255, 0);
        image[2, 0] = new Rgb24(0, 0, 255);
        var data = ImageFixtures.Encode(image, new PngEncoder());
        // 0.2126, 0.7152, 0.0722 × 255
        Assert.Equal(new byte[] { 54, 182, 18 }, Decode(data, new ImageReadOptions { Channels = 1 }).Pixels);
    }

    /// <summary>60×30: the left third red, the middle third green, the right third blue.</summary>
    private static byte[] Thirds()
    {
        using var image = new Image<Rgb24>(60, 30);
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < 60; x++)
                image[x, y] = x < 20 ? new Rgb24(255, 0, 0) : x < 40 ? new Rgb24(0, 255, 0) : new Rgb24(0, 0, 255);
        return ImageFixtures.Encode(image, new PngEncoder());
    }

    private static byte[] At(Image8 image, int x, int y) =>
        image.Pixels.AsSpan((y * image.Width + x) * image.Channels, image.Channels).ToArray();

    [Fact]
    public void Fill_crops_the_centre_fit_pads_and_stretch_squeezes()
    {
        var data = Thirds();
        var size = new ImageReadOptions { Channels = 3, Width = 30, Height = 30, Filter = ResampleFilter.Nearest };
        var fill = Decode(data, size);
        Assert.Equal((30, 30), (fill.Width, fill.Height));
        // the centre 30 of 60 columns, 15…44: red 15…19 → 0…4, green 20…39 → 5…24, blue 40…44 → 25…29
        Assert.Equal(new byte[] { 255, 0, 0 }, At(fill, 2, 15));
        Assert.Equal(new byte[] { 0, 255, 0 }, At(fill, 15, 15));
        Assert.Equal(new byte[] { 0, 0, 255 }, At(fill, 27, 15));
        var fit = Decode(data, size with { Resize = FitMode.Fit, Background = Background.White });
        Assert.Equal(new byte[] { 255, 255, 255 }, At(fit, 15, 2)); // padding above
        Assert.Equal(new byte[] { 255, 0, 0 }, At(fit, 2, 15));
        Assert.Equal(new byte[] { 0, 0, 255 }, At(fit, 28, 15));
        Assert.Equal(new byte[] { 255, 255, 255 }, At(fit, 15, 28)); // and below
        var stretch = Decode(data, size with { Resize = FitMode.Stretch });
        Assert.Equal(new byte[] { 255, 0, 0 }, At(stretch, 5, 5));
        Assert.Equal(new byte[] { 0, 0, 255 }, At(stretch, 25, 25));
        var e = Assert.Throws<DiffusionException>(() =>
            Decode(data, size with { Resize = FitMode.None, Expecting = "model 'm.onnx'" }));
        Assert.Equal("'test' is 60×30; model 'm.onnx' needs 30×30 images and resizing is off.", e.Message);
    }

    [Theory]
    [InlineData(ResampleFilter.Lanczos3)]
    [InlineData(ResampleFilter.Bicubic)]
    public void Smooth_filters_resample_without_shifting_the_picture(ResampleFilter filter)
    {
        var data = Thirds();
        // 60×30 → 36×18 (× 0.6; a whole-number reduction would average blocks instead): red 0…11.4, green …23.4
        var small = Decode(data, new ImageReadOptions { Channels = 3, Width = 36, Height = 18, Filter = filter });
        var row = string.Join(" ", Enumerable.Range(0, 36).Select(x => string.Join(",", At(small, x, 9))));
        // well inside each third the colour is exact; at the edges the filter mixes its neighbours
        Assert.True(At(small, 4, 9).SequenceEqual(new byte[] { 255, 0, 0 }), row);
        Assert.True(At(small, 18, 9).SequenceEqual(new byte[] { 0, 255, 0 }), row);
        Assert.True(At(small, 31, 9).SequenceEqual(new byte[] { 0, 0, 255 }), row);
        var edge = At(small, 11, 9);
        Assert.True(edge[0] is > 0 and < 255 || edge[1] is > 0 and < 255, "the red|green edge should be blended: "
            + row);
    }

    [Fact]
    public void An_output_enlarged_k_times_is_read_back_exactly_at_the_model_size()
    {
        var random = new Random(3);
        var pixels = new byte[28 * 28 * 3];
        random.NextBytes(pixels);
        var image = new Image8(28, 28, 3, pixels);
        foreach (var k in new[] { 2, 5 })
        {
            using var ms = new MemoryStream();
            ImageFile.Write(ms, ImageGrid.Scale(image, k));
            var back = Decode(ms.ToArray(), new ImageReadOptions { Channels = 3, Width = 28, Height = 28 });
            Assert.Equal(pixels, back.Pixels);
        }
        var smooth = ImageGrid.Scale(image, 4, ResampleFilter.Lanczos3);
        Assert.Equal((112, 112), (smooth.Width, smooth.Height));
        Assert.NotEqual(ImageGrid.Scale(image, 4).Pixels, smooth.Pixels);
    }

    [Theory]
    [InlineData(1, 0, 1)] // as stored: the white pixel bottom left
    [InlineData(3, 2, 0)] // turned 180°: top right
    [InlineData(6, 0, 0)] // turned 90° clockwise: the 3×2 image becomes 2×3, the pixel top left
    [InlineData(8, 1, 2)] // turned 90° counter-clockwise: bottom right
    public void Exif_orientation_is_applied(int orientation, int x, int y)
    {
        using var image = new Image<Rgb24>(3, 2);
        image[0, 1] = new Rgb24(255, 255, 255); // one white pixel, bottom left
        image.Metadata.ExifProfile = new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)orientation);
        var back = Decode(ImageFixtures.Encode(image, new PngEncoder()), new ImageReadOptions { Channels = 1 });
        Assert.Equal(orientation >= 5 ? (2, 3) : (3, 2), (back.Width, back.Height));
        Assert.Equal(255, back.Pixels[y * back.Width + x]);
        Assert.Equal(255, back.Pixels.Sum(b => b));
    }

    [Fact]
    public void A_corrupt_exif_block_is_refused_in_one_line()
    {
        byte[] Jpeg(ushort orientation)
        {
            using var image = new Image<Rgb24>(8, 8);
            image.Metadata.ExifProfile = new ExifProfile();
            image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
            image.Metadata.ExifProfile.SetValue(ExifTag.Software, "a camera that writes a longer EXIF block");
            return ImageFixtures.Encode(image, new JpegEncoder());
        }
        var data = Jpeg(6);
        // damage the EXIF segment (APP1, "Exif\0\0") inside its own length: the byte order mark and IFD offsets
        int at = Encoding.Latin1.GetString(data).IndexOf("Exif\0\0", StringComparison.Ordinal);
        int length = data[at - 2] << 8 | data[at - 1];
        Assert.True(at > 0 && length > 30);
        for (int i = at + 6; i < at + length - 2; i++) data[i] = 0xFF;
        Assert.Equal("'test' has a corrupt EXIF block (no entry in it can be read), so which way is up is unknown.",
            Assert.Throws<DiffusionException>(() => Decode(data)).Message);
        Assert.Equal("'test' has a corrupt EXIF block: orientation 200 is not one of 1…8.",
            Assert.Throws<DiffusionException>(() => Decode(Jpeg(200))).Message);
        Assert.Equal((8, 8), (Decode(Jpeg(0)).Width, Decode(Jpeg(0)).Height)); // 0, as some cameras write: as stored
    }

    [Fact]
    public void Unknown_truncated_and_oversized_inputs_get_one_line_naming_the_file()
    {
        string Refusal(byte[] data, ImageReadOptions? o = null) =>
            Assert.Throws<DiffusionException>(() => ImageFile.Decode(data, "in.x", o)).Message;
        Assert.Equal("'in.x' is not an image in a format read here (PNG, JPEG, WebP, BMP, GIF, TGA).",
            Refusal(Encoding.UTF8.GetBytes("just some text, not an image")));
        using var pattern = ImageFixtures.Pattern(64, 64);
        var jpeg = ImageFixtures.Encode(pattern, new JpegEncoder());
        Assert.Equal("'in.x' is truncated: the JPEG ends before its end-of-image marker.",
            Refusal(jpeg[..(jpeg.Length / 2)]));
        // 10 000 × 10 000 = 100 MP, refused from the header before any pixel is decoded
        var big = HostileFiles.Png("10000² gray");
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal("'in.x' is 10000×10000 = 100,000,000 pixels; image inputs are limited to 16,777,216 pixels.",
            Refusal(big));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20);
        Assert.True(ImageFile.LastDecoderPeak < 1 << 20);
        var budget = new ImageReadOptions
        {
            Limits = new ImageLimits { MaxDecoderBytes = 1 << 20 }, Width = 2048, Height = 2048,
        };
        Assert.Equal("'in.x' needs more memory to decode than the 1 MiB allowed.",
            Refusal(ImageFixtures.Encode(pattern, new PngEncoder()), budget));
    }

    [Fact]
    public void A_gif_is_read_to_its_first_frame()
    {
        using var gif = new Image<Rgb24>(4, 4, new Rgb24(255, 0, 0));
        using var second = new Image<Rgb24>(4, 4, new Rgb24(0, 0, 255));
        gif.Frames.AddFrame(second.Frames.RootFrame);
        var back = Decode(ImageFixtures.Encode(gif, new SixLabors.ImageSharp.Formats.Gif.GifEncoder()),
            new ImageReadOptions { Channels = 3 });
        Assert.Equal(new byte[] { 255, 0, 0 }, At(back, 0, 0));
    }
}
