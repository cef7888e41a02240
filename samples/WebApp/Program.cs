// A web front end for a diffusion model, on the Diffusion.Runtime package.
//   dotnet run -- --Model path/to/model.onnx --urls http://127.0.0.1:5000
// POST /generate {"class":"sneaker","sampler":"dpm++2m","steps":20,"seed":1,"guidance":3,"count":1,"scale":4} →
// image/png
// GET  /generate/stream?…same fields… → server-sent events: progress, then the PNG (base64); GET / → the page.
// GET  /info → the model, and every field /generate accepts with its range; the queue's limits and load.
// --Model may also name a text-to-image folder (model_index.json, tokenizer/, text_encoder/, unet/, vae_decoder/):
// then /generate reads {"prompt":"…","negativePrompt":"…","width":512,"height":512,"guidance":7.5,…} and the page
// shows a prompt box.
// Generations run on the queue's own threads, --Server:Concurrency at once (default: half the cores), with
// --Server:QueueCapacity more waiting (default 4 × that); a request past them gets 429 and Retry-After, one that runs
// past --Server:TimeLimitSeconds (default 120, waiting included) gets 503 and Retry-After, and a client that hangs up
// cancels its generation within one sampling step.
using System.Text.Json;
using Diffusion.Runtime;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Pipelines;
using Diffusion.Runtime.Samplers;

var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args, ContentRootPath = AppContext.BaseDirectory,
});
var modelPath = builder.Configuration["Model"]
    ?? Path.Combine(AppContext.BaseDirectory, "../../../../../models/fashion-mnist/model.onnx");
var server = builder.Configuration.GetSection("Server");
GenerationQueueOptions QueueOptions() // read when the queue is made, inside the start's error handling
{
    int concurrency = server.GetValue("Concurrency", GenerationQueueOptions.DefaultConcurrency);
    double limit = server.GetValue("TimeLimitSeconds", 120.0);
    if (!(limit > 0 && limit <= 86_400))
        throw new DiffusionArgumentException(nameof(GenerationQueueOptions.TimeLimit),
            $"expected seconds in (0, 86400], got {limit}.");
    return new GenerationQueueOptions
    {
        Concurrency = concurrency, Capacity = server.GetValue("QueueCapacity", 4 * concurrency),
        TimeLimit = TimeSpan.FromSeconds(limit),
    };
}
// A request is a few fields: a body past this is refused with 413 before it is read.
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = ImageRequest.MaxBodyBytes);
// One model for the whole app: DiffusionModel and ImageGenerator serve concurrent requests (see Diffusion.Runtime's
// README); the queue decides how many at once.
// Memory goes back after a burst (--Server:ReturnMemory, default true): ONNX Runtime frees its tensors instead of
// keeping them in its arena, and glibc hands blocks of 1 MiB and more back to the system at once. It costs about 8 %
// of the throughput of large batches (see samples/README.md); false keeps the arena's peak for the next burst.
builder.Services.AddSingleton(_ =>
{
    bool returnMemory = server.GetValue("ReturnMemory", true);
    if (returnMemory && OperatingSystem.IsLinux()) Glibc.ReturnLargeBlocks();
    var session = new SessionSettings { CpuMemoryArena = !returnMemory };
    return ServedModel.Load(modelPath, session);
});
builder.Services.AddSingleton(_ => new GenerationQueue(QueueOptions()));
var app = builder.Build();
GenerationQueue queue;
try
{
    app.Services.GetRequiredService<ServedModel>(); // load at start: a bad model fails the start, not a request
    queue = app.Services.GetRequiredService<GenerationQueue>();
}
catch (DiffusionException e) // one line naming the setting or the file, as the command line does
{
    var setting = e.Parameter switch
    {
        nameof(GenerationQueueOptions.Capacity) => "--Server:QueueCapacity",
        nameof(GenerationQueueOptions.TimeLimit) => "--Server:TimeLimitSeconds",
        { } other => $"--Server:{other}",
        null => null,
    };
    Console.Error.WriteLine(setting is null ? $"error: {e.Message}" : $"error: {setting}: {e.Problem}");
    return e is DiffusionArgumentException ? 2 : 1;
}
catch (InvalidOperationException e) when (e.Message.Contains("configuration value")) // not a number
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
// Stopping: waiting requests get 503 at once and running ones stop within a step; the shutdown does not wait on them.
app.Lifetime.ApplicationStopping.Register(queue.Dispose);
app.UseDefaultFiles();
app.UseStaticFiles();

app.MapGet("/info", (ServedModel m) => new
{
    model = Path.GetFileName(m.Source.TrimEnd('/')), m.Shape.Channels, m.Shape.Height, m.Shape.Width,
    textToImage = m.Pipeline is not null,
    classes = ImageRequest.ClassNames(m),
    samplers = SamplerRegistry.All.Select(e => new { e.Name, adaptive = e.IsAdaptive }),
    fields = ImageRequest.Fields(m),
    queue = new
    {
        queue.Options.Concurrency, queue.Options.Capacity, timeLimitSeconds = queue.Options.TimeLimit.TotalSeconds,
        queue.Running, queue.Waiting,
    },
});

app.MapPost("/generate", async (HttpContext http, ServedModel generator) =>
{
    ImageRequest? body;
    try { body = await http.Request.ReadFromJsonAsync<ImageRequest>(http.RequestAborted); }
    catch (Exception e) when (e is JsonException or InvalidOperationException)
    {
        return Results.BadRequest(new ApiError(
            $"the body is not a JSON image request: {Printable.Of(e.Message)}", null));
    }
    if (body is null) return Results.BadRequest(new ApiError("the body is empty; send a JSON image request", null));
    try
    {
        return Results.File(await body.RenderAsync(generator, queue, null, http.RequestAborted), "image/png");
    }
    catch (Exception e) when (ImageRequest.Failure(http, e) is { } failure)
    {
        return failure;
    }
});

app.MapGet("/generate/stream", async (HttpContext http, ServedModel generator, [AsParameters] ImageRequest query) =>
{
    var channel = System.Threading.Channels.Channel.CreateBounded<GenerationProgress>(
        new System.Threading.Channels.BoundedChannelOptions(1)
        {
            FullMode = System.Threading.Channels.BoundedChannelFullMode.DropOldest, // only the latest matters
        });
    var progress = new Progress<GenerationProgress>(p => channel.Writer.TryWrite(p));
    Task<byte[]> render;
    try
    {
        render = query.RenderAsync(generator, queue, progress, http.RequestAborted);
        // A refusal known at once (a bad field, a full queue) is a status code, before the stream starts.
        if (render.IsFaulted) await render;
    }
    catch (Exception e) when (ImageRequest.Failure(http, e) is { } failure)
    {
        await failure.ExecuteAsync(http);
        return;
    }
    http.Response.Headers.ContentType = "text/event-stream";
    http.Response.Headers.CacheControl = "no-cache";
    async Task Send(string name, object data)
    {
        await http.Response.WriteAsync($"event: {name}\ndata: {JsonSerializer.Serialize(data)}\n\n",
            http.RequestAborted);
        await http.Response.Body.FlushAsync(http.RequestAborted);
    }
    _ = render.ContinueWith(_ => channel.Writer.TryComplete(), TaskScheduler.Default);
    await Send("queued", new { queue.Running, queue.Waiting });
    try
    {
        await foreach (var p in channel.Reader.ReadAllAsync(http.RequestAborted))
            await Send("progress", new { done = p.Fraction * p.ImagesTotal, total = p.ImagesTotal });
        await Send("image", Convert.ToBase64String(await render));
    }
    catch (Exception e) when (e is DiffusionException && !http.RequestAborted.IsCancellationRequested)
    {
        await Send("error", ImageRequest.Describe(e).Error);
    }
    catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested) { } // the client left
});

app.Run();
return 0;

/// <summary>An inclusive range of a numeric field of <see cref="ImageRequest"/>, and its default.</summary>
public sealed record FieldRange(double Min, double Max, double? Default = null);

/// <summary>
/// The model the app serves: a pixel model's generator, or a text-to-image pipeline; either serves concurrent requests.
/// </summary>
public sealed class ServedModel : IDisposable
{
    private ServedModel(IImageGenerator generator, DiffusionModel? pixels, TextToImagePipeline? pipeline,
        string source, ImageShape shape)
    {
        (Generator, Pixels, Pipeline, Source, Shape) = (generator, pixels, pipeline, source, shape);
    }

    /// <summary>What generates.</summary>
    public IImageGenerator Generator { get; }
    /// <summary>The pixel model, or null.</summary>
    public DiffusionModel? Pixels { get; }
    /// <summary>The text-to-image pipeline, or null.</summary>
    public TextToImagePipeline? Pipeline { get; }
    /// <summary>The file or folder.</summary>
    public string Source { get; }
    /// <summary>The images' default shape.</summary>
    public ImageShape Shape { get; }

    /// <summary>A text-to-image folder (model_index.json and a text encoder), else a pixel model.</summary>
    public static ServedModel Load(string path, SessionSettings session)
    {
        if (TextToImagePipeline.IsFolder(path))
        {
            var pipeline = TextToImagePipeline.Load(path, new PipelineOptions { Session = session });
            return new(pipeline, null, pipeline, path, pipeline.ImageShapeOf(new GenerationRequest()));
        }
        var model = DiffusionModel.Load(path, new ModelOptions { Session = session });
        return new(new ImageGenerator(model), model, null, path, model.Shape);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Pixels?.Dispose();
        Pipeline?.Dispose();
    }
}

/// <summary>What a client may ask for; bounded so that one request cannot occupy the server for long.</summary>
public sealed record ImageRequest(string? Class = null, string? Sampler = null, int Steps = 20, ulong Seed = 0,
    float? Guidance = null, int Count = 1, int? Scale = null, string? Prompt = null, string? NegativePrompt = null,
    int? Width = null, int? Height = null)
{
    /// <summary>The largest request body: the fields above fit many times over.</summary>
    public const long MaxBodyBytes = 16 * 1024;

    /// <summary>The longest prompt this server takes (the text encoder reads 77 tokens of it anyway).</summary>
    public const int MaxPromptLength = 2000;

    private static readonly FieldRange StepsRange = new(1, 200, 20), CountRange = new(1, 64, 1),
        TextCountRange = new(1, 8, 1), ScaleRange = new(1, 16, 4),
        GuidanceRange = new(0, ImageGenerator.MaxGuidance, 3), TextGuidanceRange = new(0, ImageGenerator.MaxGuidance, 7.5);

    /// <summary>The largest side a text-to-image request may ask for, in pixels.</summary>
    private const int MaxSide = 1024;

    /// <summary>
    /// The names <c>class</c> accepts: the config's, or the numbers (none for an unconditional or text model).
    /// </summary>
    public static string[] ClassNames(ServedModel served) => served.Pixels is not { NumClasses: > 0 } model ? []
        : model.Config.ClassNames ?? Enumerable.Range(0, model.NumClasses).Select(i => i.ToString()).ToArray();

    /// <summary>Every field <c>/generate</c> reads, with what it accepts on <paramref name="served"/>.</summary>
    public static object Fields(ServedModel served)
    {
        var sampler = new { choices = SamplerRegistry.All.Select(e => e.Name), @default = SamplerRegistry.DefaultName };
        var seed = new { min = 0UL, max = ulong.MaxValue, @default = 0UL }; // exact: a double would round the maximum
        if (served.Pipeline is { } p)
            return new
            {
                prompt = new { maxLength = MaxPromptLength, @default = "" },
                negativePrompt = new { maxLength = MaxPromptLength, @default = "" }, // read only with guidance ≠ 1
                width = new { min = p.Factor, max = MaxSide, multipleOf = p.Factor, @default = p.Width },
                height = new { min = p.Factor, max = MaxSide, multipleOf = p.Factor, @default = p.Height },
                sampler, steps = StepsRange, count = TextCountRange, scale = ScaleRange with { Default = 1 }, seed,
                guidance = TextGuidanceRange,
            };
        var model = served.Pixels!;
        return new
        {
            @class = new
            {
                choices = ClassNames(served),
                numbers = model.NumClasses == 0 ? null : new FieldRange(0, model.NumClasses - 1),
                unconditional = "absent or empty", // then guidance is not read
            },
            sampler, steps = StepsRange, count = CountRange, scale = ScaleRange, seed,
            guidance = model.NumClasses > 0 ? GuidanceRange : null, // read only with a class
        };
    }

    /// <summary>The library's parameters as this API's JSON fields.</summary>
    private static readonly Dictionary<string, string> FieldNames = new()
    {
        ["Sampler"] = "sampler", ["Steps"] = "steps", ["Count"] = "count", ["BatchSize"] = "count", ["Seed"] = "seed",
        ["Guidance"] = "guidance", ["Class"] = "class", ["ClassLabels"] = "class", ["factor"] = "scale",
        ["Prompt"] = "prompt", ["NegativePrompt"] = "negativePrompt", ["Width"] = "width", ["Height"] = "height",
    };

    /// <summary>A problem of the request as the body of a 400: the message, and the JSON field it concerns.</summary>
    public static ApiError Describe(Exception e) =>
        e is DiffusionException { Parameter: { } parameter } d
            && FieldNames.GetValueOrDefault(parameter, parameter) is var field
            ? new ApiError($"{field}: {d.Problem}", field)
            : new ApiError(e.Message, null);

    /// <summary>
    /// The response for a generation that failed with <paramref name="e"/>: 429 (queue full) or 503 (time limit,
    /// stopping) with Retry-After, 400 for a bad request; null for a client that left, or a fault that is a bug.
    /// </summary>
    public static IResult? Failure(HttpContext http, Exception e)
    {
        switch (e)
        {
            case OperationCanceledException when http.RequestAborted.IsCancellationRequested:
                return Results.Empty; // nobody is listening
            case GenerationRefusedException refused:
                http.Response.Headers.RetryAfter = ((long)refused.RetryAfter.TotalSeconds).ToString();
                return Results.Json(new ApiError(refused.Message, null), statusCode:
                    refused.Reason == GenerationRefusal.QueueFull ? StatusCodes.Status429TooManyRequests
                        : StatusCodes.Status503ServiceUnavailable);
            case ObjectDisposedException:
                http.Response.Headers.RetryAfter = "10";
                return Results.Json(new ApiError("the server is stopping.", null),
                    statusCode: StatusCodes.Status503ServiceUnavailable);
            case DiffusionException:
                return Results.BadRequest(Describe(e));
            default:
                return null;
        }
    }

    /// <summary>
    /// The PNG: the images in a grid, enlarged <see cref="Scale"/> times (nearest neighbour), generated through
    /// <paramref name="queue"/>.
    /// </summary>
    public async Task<byte[]> RenderAsync(ServedModel served, GenerationQueue queue,
        IProgress<GenerationProgress>? progress, CancellationToken cancellation)
    {
        Check(nameof(Steps), Steps, StepsRange);
        Check(nameof(Count), Count, served.Pipeline is null ? CountRange : TextCountRange);
        // images are enlarged by default only where they are small (a pixel model's); a text model's come as made
        int scale = Scale ?? (served.Pipeline is null ? (int)ScaleRange.Default!.Value : 1);
        Check("factor", scale, ScaleRange);
        GenerationRequest request;
        if (served.Pipeline is not null)
        {
            if (Class is not null)
                throw new DiffusionArgumentException(nameof(Class), "this model is text-conditioned; send a prompt.");
            foreach (var (text, field) in new[] { (Prompt, nameof(Prompt)), (NegativePrompt, nameof(NegativePrompt)) })
                if (text is { Length: > MaxPromptLength })
                    throw new DiffusionArgumentException(field, $"{text.Length} characters; at most {MaxPromptLength}.");
            foreach (var (side, field) in new[] { (Width, nameof(Width)), (Height, nameof(Height)) })
                if (side is > MaxSide)
                    throw new DiffusionArgumentException(field, $"at most {MaxSide} pixels on this server, got {side}.");
            float guidance = Guidance ?? (float)TextGuidanceRange.Default!.Value;
            request = new GenerationRequest
            {
                Sampler = Sampler, Steps = Steps, Seed = Seed, Count = Count, BatchSize = Count, Guidance = guidance,
                Prompt = Prompt ?? "", NegativePrompt = guidance == 1 ? null : NegativePrompt, Width = Width,
                Height = Height,
            };
        }
        else
        {
            if (Prompt is not null || NegativePrompt is not null || Width is not null || Height is not null)
                throw new DiffusionArgumentException(Prompt is not null ? nameof(Prompt)
                    : NegativePrompt is not null ? nameof(NegativePrompt) : Width is not null ? nameof(Width)
                    : nameof(Height), "this model is not text-conditioned; it makes one size.");
            var model = served.Pixels!;
            bool conditional = model.NumClasses > 0 && !string.IsNullOrEmpty(Class);
            request = new GenerationRequest
            {
                Sampler = Sampler, Steps = Steps, Seed = Seed, Count = Count, BatchSize = Count,
                ClassLabels = conditional ? [model.ResolveClass(Class!)] : [],
                Guidance = conditional ? Guidance ?? (float)GuidanceRange.Default!.Value : 1,
            };
        }
        var result = await queue.GenerateAsync(served.Generator, request, progress, cancellation);
        var grid = ImageGrid.Tile(result.Images, result.Count, result.Channels, result.Height, result.Width);
        using var stream = new MemoryStream();
        ImageFile.Write(stream, ImageGrid.Scale(grid, scale));
        return stream.ToArray();
    }

    private static void Check(string parameter, int value, FieldRange range)
    {
        if (value < range.Min || value > range.Max)
            throw new DiffusionArgumentException(parameter, $"must lie in {range.Min}…{range.Max}, got {value}.");
    }
}

/// <summary>The body of a 4xx/5xx: what is wrong, and the request's JSON field it concerns (null when none).</summary>
public sealed record ApiError(string Error, string? Field);

/// <summary>
/// glibc's allocator, told to map large blocks on their own so that freeing one returns it to the system.
/// </summary>
internal static partial class Glibc
{
    private const int TrimThreshold = -1, MmapThreshold = -3; // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD of malloc.h

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int parameter, int value);

    public static void ReturnLargeBlocks()
    {
        try
        {
            MallOpt(MmapThreshold, 1 << 20);
            MallOpt(TrimThreshold, 1 << 20);
        }
        catch (EntryPointNotFoundException) { } // not glibc (musl): its allocator returns large blocks anyway
    }
}
