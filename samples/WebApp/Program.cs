// A web front end for a diffusion model, on the Diffusion.Runtime package.
//   dotnet run -- --Model path/to/model.onnx --urls http://127.0.0.1:5000
// POST /generate {"class":"sneaker","sampler":"dpm++2m","steps":20,"seed":1,"guidance":3,"count":1,"scale":4} →
// image/png
// GET  /generate/stream?…same fields… → server-sent events: progress, then the PNG (base64); GET / → the page.
using System.Text.Json;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;

var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args, ContentRootPath = AppContext.BaseDirectory,
});
var modelPath = builder.Configuration["Model"]
    ?? Path.Combine(AppContext.BaseDirectory, "../../../../../models/fashion-mnist/model.onnx");
// One model for the whole app: DiffusionModel and ImageGenerator serve concurrent requests (see Diffusion.Runtime's
// README).
builder.Services.AddSingleton(_ => DiffusionModel.Load(modelPath));
builder.Services.AddSingleton(sp => new ImageGenerator(sp.GetRequiredService<DiffusionModel>()));
var app = builder.Build();
app.Services.GetRequiredService<DiffusionModel>(); // load at start: a bad model fails the start, not the first request
app.UseDefaultFiles();
app.UseStaticFiles();

app.MapGet("/info", (DiffusionModel m) => new
{
    model = Path.GetFileName(m.Source), m.Channels, m.Height, m.Width,
    classes = m.Config.ClassNames ?? Enumerable.Range(0, m.NumClasses).Select(i => i.ToString()).ToArray(),
    samplers = SamplerRegistry.All.Where(e => !e.IsAdaptive).Select(e => e.Name),
});

app.MapPost("/generate", async (HttpRequest http, ImageGenerator generator, CancellationToken cancellation) =>
{
    ImageRequest? body;
    try { body = await http.ReadFromJsonAsync<ImageRequest>(cancellation); }
    catch (Exception e) when (e is JsonException or InvalidOperationException)
    {
        return Results.BadRequest(new { error = $"the body is not a JSON image request: {e.Message}" });
    }
    if (body is null) return Results.BadRequest(new { error = "the body is empty; send a JSON image request" });
    try
    {
        var png = await body.RenderAsync(generator, null, cancellation);
        return Results.File(png, "image/png");
    }
    catch (DiffusionException e)
    {
        return Results.BadRequest(ImageRequest.Error(e));
    }
});

app.MapGet("/generate/stream",
    async (HttpContext context, ImageGenerator generator, [AsParameters] ImageRequest query) =>
{
    context.Response.Headers.ContentType = "text/event-stream";
    context.Response.Headers.CacheControl = "no-cache";
    async Task Send(string name, object data)
    {
        await context.Response.WriteAsync($"event: {name}\ndata: {JsonSerializer.Serialize(data)}\n\n",
            context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }
    var channel = System.Threading.Channels.Channel.CreateUnbounded<GenerationProgress>();
    var progress = new Progress<GenerationProgress>(p => channel.Writer.TryWrite(p));
    var render = query.RenderAsync(generator, progress, context.RequestAborted);
    _ = render.ContinueWith(_ => channel.Writer.TryComplete(), TaskScheduler.Default);
    await foreach (var p in channel.Reader.ReadAllAsync(context.RequestAborted))
        await Send("progress", new { done = p.Fraction * p.ImagesTotal, total = p.ImagesTotal });
    try
    {
        await Send("image", Convert.ToBase64String(await render));
    }
    catch (DiffusionException e)
    {
        await Send("error", ImageRequest.Error(e).Error);
    }
});

app.Run();

/// <summary>What a client may ask for; bounded so that one request cannot occupy the server for long.</summary>
public sealed record ImageRequest(string? Class = null, string? Sampler = null, int Steps = 20, ulong Seed = 0,
    float Guidance = 3, int Count = 1, int Scale = 4)
{
    /// <summary>The library's parameters as this API's JSON fields.</summary>
    private static readonly Dictionary<string, string> Fields = new()
    {
        ["Sampler"] = "sampler", ["Steps"] = "steps", ["Count"] = "count", ["BatchSize"] = "count", ["Seed"] = "seed",
        ["Guidance"] = "guidance", ["Class"] = "class", ["ClassLabels"] = "class", ["factor"] = "scale",
    };

    /// <summary>An error as the body of a 400: the message, and the JSON field it concerns when there is one.</summary>
    public static ApiError Error(DiffusionException e) =>
        e.Parameter is { } parameter && Fields.GetValueOrDefault(parameter, parameter) is var field
            ? new ApiError($"{field}: {e.Problem}", field)
            : new ApiError(e.Message, null);

    /// <summary>The PNG: the images in a grid, enlarged <see cref="Scale"/> times (nearest neighbour).</summary>
    public async Task<byte[]> RenderAsync(ImageGenerator generator, IProgress<GenerationProgress>? progress,
        CancellationToken cancellation)
    {
        if (Steps is < 1 or > 200)
            throw new DiffusionArgumentException(nameof(Steps), $"must lie in 1…200, got {Steps}.");
        if (Count is < 1 or > 64)
            throw new DiffusionArgumentException(nameof(Count), $"must lie in 1…64, got {Count}.");
        if (Scale is < 1 or > 16) throw new DiffusionArgumentException("factor", $"must lie in 1…16, got {Scale}.");
        var model = generator.Model;
        bool conditional = model.NumClasses > 0 && !string.IsNullOrEmpty(Class);
        var result = await generator.GenerateAsync(new GenerationRequest
        {
            Sampler = Sampler, Steps = Steps, Seed = Seed, Count = Count, BatchSize = Count,
            ClassLabels = conditional ? [model.ResolveClass(Class!)] : [],
            Guidance = conditional ? Guidance : 1,
        }, progress, cancellation);
        var grid = ImageGrid.Tile(result.Images, result.Count, result.Channels, result.Height, result.Width);
        using var stream = new MemoryStream();
        ImageFile.Write(stream, ImageGrid.Scale(grid, Scale));
        return stream.ToArray();
    }
}

/// <summary>The body of a 400: what is wrong, and the request's JSON field it concerns (null when none).</summary>
public sealed record ApiError(string Error, string? Field);
