using System.Globalization;
using System.Text.RegularExpressions;
using Diffusion.Cli;
using Diffusion.ReferenceModels;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Noise;
using Diffusion.Runtime.Onnx;
using MathNet.Numerics.Distributions;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Diffusion.Cli.Tests;

/// <summary>
/// <c>nll</c> on the closed-form Gaussian model of N(0, 0.25²) pixels, whose data's exact log-density the ODE must
/// give, and its refusals.
/// </summary>
public class CliLikelihoodTests
{
    private const float Mean = 0, Std = 0.25f;

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>The table's text as one line (cells wrap at the console's width).</summary>
    private static string Flat(string output) => Regex.Replace(output.Replace('│', ' '), @"\s+", " ");

    private static readonly Lazy<(string Model, string Npy, double ExactBits)> Files = new(() =>
    {
        var dir = Fixtures.TempFolder();
        var model = Path.Combine(dir, "g.onnx");
        File.WriteAllBytes(model, GaussianModel.Build(new GaussianModelSpec { Mean = [Mean], Std = [Std] }));
        var values = new float[6 * 64];
        new NoiseGenerator(11).Fill(values, 0, 64, 0);
        for (int i = 0; i < values.Length; i++) values[i] = Math.Clamp(Mean + Std * values[i], -1, 1);
        var npy = Path.Combine(dir, "data.npy");
        Npy.Save(npy, values, 6, 1, 8, 8);
        double exact = -values.Sum(v => Normal.PDFLn(Mean, Std, v)) / (values.Length * Math.Log(2));
        return (model, npy, exact);
    });

    private static double BitsPerDim(string output)
    {
        var last = output.TrimEnd().Split('\n')[^1];
        var match = Regex.Match(last, @"^bits/dim: (-?[0-9.]+) ± ([0-9.]+)$");
        Assert.True(match.Success, $"last line: {last}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Fact]
    public void The_ode_gives_the_datas_exact_log_density_and_the_bound_lies_above_it()
    {
        var (model, npy, exact) = Files.Value;
        var (code, output, error) = Run("nll", "--model", model, "--data", npy, "--method", "ode");
        Assert.True(code == 0, error);
        Assert.Contains("continuous (a density)", Flat(output));
        Assert.Contains("ODE slopes per image", Flat(output));
        Assert.Equal(exact, BitsPerDim(output), 0.01);
        var terms = Path.Combine(Fixtures.TempFolder(), "terms.csv");
        (code, output, error) = Run("nll", "--model", model, "--data", npy, "--terms", terms, "--batch", "500");
        Assert.True(code == 0, error);
        Assert.True(BitsPerDim(output) > exact);
        Assert.Contains("KL terms t = 100…999", Flat(output));
        var csv = File.ReadAllLines(terms);
        Assert.Equal("t,bits_per_dim,draws", csv[0]);
        Assert.Equal(1 + 1000 + 1, csv.Length); // the header, every timestep, the prior
        Assert.EndsWith(",6", csv[1]);
        (code, output, error) = Run("nll", "--model", model, "--data", npy, "--timesteps", "20", "--count", "3");
        Assert.True(code == 0, error);
        Assert.Contains("decoder + 20 stratified KL terms per image", Flat(output));
        Assert.Contains("3 images", Flat(output));
    }

    [Fact]
    public void A_folder_of_8_bit_images_is_measured_as_bins()
    {
        var (model, _, _) = Files.Value;
        var dir = Fixtures.TempFolder();
        for (int k = 0; k < 3; k++)
        {
            using var image = new Image<L8>(8, 8);
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) image[x, y] = new L8((byte)(128 + 20 * Math.Sin(k + x * 1.7 + y)));
            image.SaveAsPng(Path.Combine(dir, $"{k}.png"));
        }
        var (code, output, error) = Run("nll", "--model", model, "--data", dir, "--method", "ode", "--probes", "2");
        Assert.True(code == 0, error);
        Assert.Contains("3 images [1,8,8], 8-bit", Flat(output));
        Assert.Contains("uniform dequantization", Flat(output));
        // a discrete likelihood: at most 8 bits per value for any model that is not absurd
        Assert.InRange(BitsPerDim(output), 0, 8);
    }

    [Theory]
    [InlineData(2, "--timesteps", "--timesteps", "abc")]
    [InlineData(2, "--terms", "--method", "ode", "--terms", "t.csv")]
    [InlineData(2, "--probes", "--method", "ode", "--probes", "0")]
    [InlineData(2, "--count", "--count", "0")]
    [InlineData(2, "--method", "--method", "elbo")]
    [InlineData(2, "--fd-step", "--method", "ode", "--fd-step", "2")]
    public void Bad_options_get_one_line_naming_them(int expected, string named, params string[] args)
    {
        var (model, npy, _) = Files.Value;
        var (code, output, error) = Run(["nll", "--model", model, "--data", npy, .. args]);
        Assert.Equal(expected, code);
        Assert.Contains(named, error);
        Assert.DoesNotContain("bits/dim:", output);
        Assert.DoesNotContain("internal error", error);
    }

    [Fact]
    public void Data_that_do_not_fit_the_model_get_one_line_naming_them()
    {
        var (model, _, _) = Files.Value;
        var dir = Fixtures.TempFolder();
        var wrongSize = Path.Combine(dir, "wrong.npy");
        Npy.Save(wrongSize, new float[2 * 16 * 16], 2, 1, 16, 16);
        var outOfRange = Path.Combine(dir, "range.npy");
        Npy.Save(outOfRange, Enumerable.Repeat(3f, 64).ToArray(), 1, 1, 8, 8);
        var bigImages = Path.Combine(dir, "big");
        Directory.CreateDirectory(bigImages);
        using (var image = new Image<L8>(9, 8)) image.SaveAsPng(Path.Combine(bigImages, "a.png"));
        var empty = Path.Combine(dir, "empty");
        Directory.CreateDirectory(empty);
        foreach (var (data, says) in new[]
        {
            (wrongSize, "(2,1,16,16)"), (outOfRange, "outside the data range"), (bigImages, "is 9×8"),
            (empty, "holds no image files"), (Path.Combine(dir, "missing.npy"), "does not exist"),
            ("fashion-mnist-test", "28×28"),
        })
        {
            if (data == "fashion-mnist-test"
                && !File.Exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
                continue;
            var (code, output, error) = Run("nll", "--model", model, "--data", data);
            Assert.Equal(1, code);
            Assert.Contains(says, error);
            Assert.Single(error.TrimEnd().Split('\n'));
            Assert.DoesNotContain("bits/dim:", output);
        }
    }
}
