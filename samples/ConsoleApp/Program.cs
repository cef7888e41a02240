// Generates a grid of images from a diffusion model with the Diffusion.Runtime package.
//   dotnet run -- [model.onnx] [out.png] [class]
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;

var modelPath = args.Length > 0 ? args[0]
    : Path.Combine(AppContext.BaseDirectory, "../../../../../models/fashion-mnist/model.onnx");
var outPath = args.Length > 1 ? args[1] : "grid.png";
try
{
    using var model = DiffusionModel.Load(modelPath);
    var request = new GenerationRequest
    {
        Sampler = "dpm++2m", Steps = 20, Count = 16, Seed = 42,
        ClassLabels = model.NumClasses > 0 ? [model.ResolveClass(args.Length > 2 ? args[2] : "0")] : [],
        Guidance = model.NumClasses > 0 ? 3 : 1,
    };
    var progress = new Progress<GenerationProgress>(p =>
        Console.Error.Write($"\r{p.ImagesDone}/{p.ImagesTotal} images, step {p.Step}/{p.Steps}   "));
    var result = await new ImageGenerator(model).GenerateAsync(request, progress);
    ImageFile.Save(outPath, ImageGrid.Tile(result.Images, result.Count, result.Channels, result.Height, result.Width));
    Console.Error.WriteLine();
    Console.WriteLine($"wrote {outPath}: {result.Count} images {result.Channels}×{result.Height}×{result.Width} " +
        $"in {result.TotalTime.TotalSeconds:0.00} s");
    return 0;
}
catch (DiffusionException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
