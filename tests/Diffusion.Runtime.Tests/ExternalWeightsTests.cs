using Diffusion.Runtime;
using Diffusion.Runtime.Onnx;
using Google.Protobuf;
using Onnx;
using Xunit;

namespace Diffusion.Tests;

/// <summary>
/// Weights stored beside a model (model.onnx_data, as Optimum exports anything over 2 GB) load; weights a model file
/// points to outside its folder, or that are missing, are refused in one line that says so.
/// </summary>
public class ExternalWeightsTests
{
    /// <summary>
    /// The Gaussian model with its ᾱ table moved out of the file to <paramref name="location"/> (relative to the model's
    /// folder, or absolute); returns the model's path.
    /// </summary>
    private static string WithExternalTable(string folder, string location, bool writeData = true)
    {
        var model = ModelProto.Parser.ParseFrom(ReferenceModels.GaussianModel.Build(Fixtures.Spec()));
        var table = model.Graph.Initializer.Single(t => t.Name == "alphas_cumprod");
        var bytes = table.RawData.ToByteArray();
        table.RawData = ByteString.Empty;
        table.DataLocation = TensorProto.Types.DataLocation.External;
        foreach (var (key, value) in new[] { ("location", location), ("offset", "0"), ("length", $"{bytes.Length}") })
            table.ExternalData.Add(new StringStringEntryProto { Key = key, Value = value });
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, "model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        if (writeData)
            File.WriteAllBytes(Path.IsPathRooted(location) ? location : Path.GetFullPath(Path.Combine(folder, location)),
                bytes);
        return path;
    }

    [Fact]
    public void Weights_beside_the_model_load_and_give_the_same_images()
    {
        var path = WithExternalTable(Path.Combine(TestFolders.Create("external"), "unet"), "model.onnx_data");
        using var external = DiffusionModel.Load(path);
        using var inline = Fixtures.Gaussian();
        var request = new Runtime.Generation.GenerationRequest { Sampler = "ddim", Steps = 10, Count = 4 };
        Assert.Equal(new Runtime.Generation.ImageGenerator(inline).Generate(request).Images,
            new Runtime.Generation.ImageGenerator(external).Generate(request).Images);
    }

    [Theory]
    [InlineData("../outside.bin", "outside its folder")]
    [InlineData("<absolute>", "outside its folder")]
    [InlineData("missing.onnx_data", "external weights are missing")]
    public void Weights_outside_the_folder_or_missing_are_refused_in_one_line(string location, string words)
    {
        var folder = Path.Combine(TestFolders.Create("external"), "unet");
        if (location == "<absolute>") location = Path.Combine(TestFolders.Create("elsewhere"), "weights.bin");
        var path = WithExternalTable(folder, location, writeData: !location.StartsWith("missing"));
        var e = Assert.Throws<DiffusionException>(() => DiffusionModel.Load(path));
        Assert.Contains(words, e.Message);
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
