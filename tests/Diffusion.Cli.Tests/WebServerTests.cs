using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Diffusion.Runtime.Imaging;
using Xunit.Abstractions;

namespace Diffusion.Cli.Tests;

/// <summary>
/// The web sample as a server on a network: a burst of 64 connections is answered (an image equal to the sequential
/// one, or 429/503 with Retry-After), /info stays quick, clients that hang up stop their generations, and the server
/// is idle again soon after; its limits are the ones /info states.
/// </summary>
public sealed class WebServerTests : IClassFixture<WebServerTests.DefaultServer>
{
    private readonly DefaultServer _web;
    private readonly ITestOutputHelper _output;

    public WebServerTests(DefaultServer web, ITestOutputHelper output) => (_web, _output) = (web, output);

    /// <summary>The web app with its default limits.</summary>
    public sealed class DefaultServer() : WebServer();

    private static readonly object Heavy = new { @class = "bag", count = 64, steps = 200 };

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body),
        System.Text.Encoding.UTF8, "application/json");

    /// <summary>Polls /info until <paramref name="done"/> holds of its queue; returns how long that took.</summary>
    private static async Task<TimeSpan> Until(HttpClient http, Func<JsonElement, bool> done, TimeSpan limit)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < limit)
        {
            var info = await http.GetFromJsonAsync<JsonElement>("info");
            if (done(info.GetProperty("queue"))) return watch.Elapsed;
            await Task.Delay(20);
        }
        throw new TimeoutException($"/info's queue did not reach the state in {limit.TotalSeconds} s");
    }

    private static int Running(JsonElement queue) => queue.GetProperty("running").GetInt32();

    [Fact]
    public async Task A_burst_of_64_connections_is_answered_or_refused_and_the_server_is_idle_soon_after()
    {
        int seconds = int.TryParse(Environment.GetEnvironmentVariable("DIFFUSION_LOAD_SECONDS"), out var s) ? s : 20;
        var samplers = new[] { "dpm++2m", "ddim", "euler_a", "unipc" };
        var bodies = Enumerable.Range(0, 16).Select(i => new
        {
            @class = (i % 10).ToString(), sampler = samplers[i % 4], steps = 4 + i % 5, seed = (ulong)i,
            count = 1 + i % 4, scale = 1,
        }).ToArray();
        var references = new List<byte[]>();
        foreach (var body in bodies)
        {
            using var response = await _web.Http.PostAsync("generate", Json(body));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            references.Add(await response.Content.ReadAsByteArrayAsync());
        }
        await Until(_web.Http, q => Running(q) == 0, TimeSpan.FromSeconds(30));
        double idleMiB = _web.ResidentMiB;

        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 1024 };
        using var clients = new HttpClient(handler)
        {
            BaseAddress = new Uri(_web.Url), Timeout = Timeout.InfiniteTimeSpan,
        };
        using var burst = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        int images = 0, refused = 0, hungUp = 0, left = 0, lost = 0, mixed = 0, unlabelled = 0;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        async Task Client(int id)
        {
            var random = new Random(id);
            while (!burst.IsCancellationRequested)
            {
                bool heavy = id % 4 == 0; // a quarter ask for the most and hang up after 0.5–3 s
                int k = random.Next(bodies.Length);
                using var leave = CancellationTokenSource.CreateLinkedTokenSource(burst.Token);
                if (heavy) leave.CancelAfter(TimeSpan.FromMilliseconds(random.Next(500, 3000)));
                try
                {
                    using var response = await clients.PostAsync("generate", Json(heavy ? Heavy : bodies[k]),
                        leave.Token);
                    var bytes = await response.Content.ReadAsByteArrayAsync(leave.Token);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        if (!heavy && !bytes.AsSpan().SequenceEqual(references[k])) Interlocked.Increment(ref mixed);
                        Interlocked.Increment(ref images);
                    }
                    else if (response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable
                        && response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1))
                    {
                        Interlocked.Increment(ref refused);
                        await Task.Delay(random.Next(50, 250), burst.Token); // impatient: far sooner than asked
                    }
                    else
                    {
                        Interlocked.Increment(ref unlabelled);
                        failures.Enqueue($"{(int)response.StatusCode}: {System.Text.Encoding.UTF8.GetString(bytes)}");
                    }
                }
                catch (OperationCanceledException) when (leave.IsCancellationRequested)
                {
                    if (burst.IsCancellationRequested) Interlocked.Increment(ref left);
                    else Interlocked.Increment(ref hungUp);
                }
                catch (HttpRequestException e)
                {
                    Interlocked.Increment(ref lost);
                    failures.Enqueue(e.Message);
                }
            }
        }

        // /info every 200 ms, through the burst and the quiet after it; the server's RSS with it.
        var infoLatencies = new List<double>();
        double peakMiB = idleMiB;
        using var stopPolling = new CancellationTokenSource();
        var poller = Task.Run(async () =>
        {
            using var http = new HttpClient { BaseAddress = new Uri(_web.Url), Timeout = TimeSpan.FromSeconds(10) };
            while (!stopPolling.IsCancellationRequested)
            {
                var watch = Stopwatch.StartNew();
                (await http.GetAsync("info")).EnsureSuccessStatusCode();
                lock (infoLatencies) infoLatencies.Add(watch.Elapsed.TotalSeconds);
                peakMiB = Math.Max(peakMiB, _web.ResidentMiB);
                await Task.Delay(200);
            }
        });
        var cpuBefore = _web.CpuTime;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 64).Select(i => Task.Run(() => Client(i))));
        var cpuBurst = _web.CpuTime - cpuBefore;
        double burstSeconds = clock.Elapsed.TotalSeconds;

        // The clients have left: the server should stop working within a step of each generation, not minutes later.
        var quietAfter = TimeSpan.Zero;
        var previous = _web.CpuTime;
        var since = Stopwatch.StartNew();
        while (true)
        {
            await Task.Delay(1000);
            var now = _web.CpuTime;
            if ((now - previous).TotalSeconds < 0.1) break; // under a tenth of one core for a second
            previous = now;
            quietAfter = since.Elapsed;
            Assert.True(since.Elapsed < TimeSpan.FromSeconds(30),
                "the server was still busy 30 s after the clients left");
        }
        await Task.Delay(TimeSpan.FromSeconds(5));
        double afterMiB = _web.ResidentMiB;
        stopPolling.Cancel();
        await poller;
        using (var again = await _web.Http.PostAsync("generate", Json(bodies[3])))
            Assert.Equal(references[3], await again.Content.ReadAsByteArrayAsync());

        double worstInfo = infoLatencies.Max();
        _output.WriteLine($"{seconds} s burst of 64 connections ({Environment.ProcessorCount} cores): {images} images, "
            + $"{refused} refusals with Retry-After, {hungUp} hung up, {left} left at the end, {lost} lost, "
            + $"{mixed} mixed, {unlabelled} other; server CPU {cpuBurst.TotalSeconds / burstSeconds:0.00} cores; "
            + $"/info {infoLatencies.Count} polls, median {Median(infoLatencies) * 1000:0} ms, "
            + $"worst {worstInfo * 1000:0} ms; "
            + $"busy {quietAfter.TotalSeconds:0} s after the clients left; RSS idle {idleMiB:0} MiB, peak {peakMiB:0}, "
            + $"5 s after {afterMiB:0}");
        Assert.True(lost == 0 && unlabelled == 0, string.Join("\n", failures.Take(5)));
        Assert.Equal(0, mixed);
        Assert.True(images > 0 && refused > 0 && hungUp > 0, $"{images} images, {refused} refused, {hungUp} hung up: "
            + "the burst should exercise every path");
        Assert.True(worstInfo < 1, $"/info took {worstInfo:0.00} s during the burst");
        Assert.True(quietAfter < TimeSpan.FromSeconds(5), $"busy {quietAfter.TotalSeconds} s after the clients left");
        Assert.True(afterMiB < idleMiB + 150, $"RSS {afterMiB:0} MiB after the burst, {idleMiB:0} MiB before");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    [Fact]
    public async Task A_client_that_hangs_up_stops_its_generation_within_a_step()
    {
        using var leave = new CancellationTokenSource();
        var call = _web.Http.PostAsync("generate", Json(Heavy), leave.Token);
        await Until(_web.Http, q => Running(q) == 1, TimeSpan.FromSeconds(30));
        await Task.Delay(500); // well into the loop
        leave.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        var stopped = await Until(_web.Http, q => Running(q) == 0, TimeSpan.FromSeconds(30));
        // One step of 64 images at 28×28 takes a few tens of ms here; a second is far more than one step.
        Assert.True(stopped < TimeSpan.FromSeconds(1), $"the generation ran on {stopped.TotalSeconds:0.00} s");
    }

    [Fact]
    public async Task A_full_queue_answers_429_and_a_request_past_the_time_limit_503_both_with_Retry_After()
    {
        using var server = new WebServer("--Server:Concurrency", "1", "--Server:QueueCapacity", "1",
            "--Server:TimeLimitSeconds", "2");
        var running = server.Http.PostAsync("generate", Json(Heavy));
        await Until(server.Http, q => Running(q) == 1, TimeSpan.FromSeconds(30));
        var waiting = server.Http.PostAsync("generate", Json(Heavy));
        await Until(server.Http, q => q.GetProperty("waiting").GetInt32() == 1, TimeSpan.FromSeconds(30));
        var watch = Stopwatch.StartNew();
        using (var full = await server.Http.PostAsync("generate", Json(Heavy)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, full.StatusCode);
            Assert.True(full.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
            Assert.Contains("the server is full: 1 generation(s) running of 1 at once, 1 request(s) waiting of 1",
                await full.Content.ReadAsStringAsync());
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), "a refusal should not wait");
        }
        foreach (var call in new[] { running, waiting }) // the waiting one's limit counts its wait
        {
            using var response = await call;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.True(response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
            Assert.Contains("ran past its time limit of 2 s", await response.Content.ReadAsStringAsync());
        }
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), watch.Elapsed.ToString());
    }

    [Theory]
    [InlineData("--Server:Concurrency", "0", 2, "error: --Server:Concurrency: expected 1…1024 generations, got 0.")]
    [InlineData("--Server:QueueCapacity", "-1", 2,
        "error: --Server:QueueCapacity: expected 0…1,000,000 waiting requests, got -1.")]
    [InlineData("--Server:TimeLimitSeconds", "-5", 2,
        "error: --Server:TimeLimitSeconds: expected seconds in (0, 86400], got -5.")]
    [InlineData("--Server:Concurrency", "many", 2, "error: Failed to convert configuration value")]
    [InlineData("--Model", "/nonexistent/model.onnx", 1, "error: ")]
    public async Task A_bad_setting_or_model_stops_the_start_with_one_line(string setting, string value, int code,
        string message)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { WebServer.Built("WebApp"), "--Model", WebServer.Model, "--urls", "http://127.0.0.1:0",
            setting, value })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            await process.WaitForExitAsync(timeout.Token);
        Assert.Equal(code, process.ExitCode);
        Assert.StartsWith(message, stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", stderr + await stdout);
    }

    [Fact]
    public async Task Info_lists_exactly_what_generate_accepts()
    {
        var info = await _web.Http.GetFromJsonAsync<JsonElement>("info");
        var fields = info.GetProperty("fields");
        var samplers = info.GetProperty("samplers").EnumerateArray().Select(e => e.GetProperty("name").GetString()!)
            .ToArray();
        Assert.Contains("rk45", samplers);
        Assert.Equal(samplers, fields.GetProperty("sampler").GetProperty("choices").EnumerateArray()
            .Select(e => e.GetString()));
        foreach (var sampler in samplers) // every listed sampler is served
        {
            using var response = await _web.Http.PostAsync("generate",
                Json(new { sampler, steps = 2, count = 1, @class = "bag" }));
            Assert.True(response.StatusCode == HttpStatusCode.OK,
                $"{sampler}: {await response.Content.ReadAsStringAsync()}");
        }
        foreach (var field in new[] { "steps", "count", "scale", "guidance" }) // each range's ends, and just past them
        {
            var range = fields.GetProperty(field);
            double min = range.GetProperty("min").GetDouble(), max = range.GetProperty("max").GetDouble();
            foreach (var (value, ok) in new[] { (min, true), (min - 1, false), (max + 1, false) })
            {
                var body = new Dictionary<string, object> { ["class"] = "bag", ["steps"] = 2, [field] = value };
                using var response = await _web.Http.PostAsync("generate", Json(body));
                var text = await response.Content.ReadAsStringAsync();
                Assert.True((response.StatusCode == HttpStatusCode.OK) == ok, $"{field} = {value}: {text}");
                if (!ok) Assert.Equal(field, JsonDocument.Parse(text).RootElement.GetProperty("field").GetString());
            }
        }
        var classes = fields.GetProperty("class").GetProperty("choices").EnumerateArray().Select(e => e.GetString());
        Assert.Equal(info.GetProperty("classes").EnumerateArray().Select(e => e.GetString()), classes);
    }

    [Fact]
    public async Task Errors_never_echo_unbounded_input_and_oversized_bodies_get_413()
    {
        // A 5 MB body is refused from its declared length, before it is read. (Sent whole through HttpClient, the
        // server's close after the 413 can reach the client as a reset while it is still sending: a raw socket
        // declares the length and reads the answer.)
        using (var socket = new System.Net.Sockets.TcpClient())
        {
            var url = new Uri(_web.Url);
            await socket.ConnectAsync(url.Host, url.Port);
            var connection = socket.GetStream();
            await connection.WriteAsync(System.Text.Encoding.ASCII.GetBytes(
                $"POST /generate HTTP/1.1\r\nHost: {url.Authority}\r\nContent-Type: application/json\r\n"
                + "Content-Length: 5000000\r\n\r\n{\"sampler\": \"xxxx"));
            var reply = new byte[512];
            int read = await connection.ReadAsync(reply).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.StartsWith("HTTP/1.1 413 ", System.Text.Encoding.ASCII.GetString(reply, 0, read));
        }
        foreach (var body in new object[]
        {
            new { sampler = new string('x', 12_000) }, new { @class = new string('y', 12_000) },
            new { steps = new string('9', 12_000) },
        })
        {
            using var response = await _web.Http.PostAsync("generate", Json(body));
            var text = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.True(text.Length < 1000, $"{text.Length} characters: {text[..Math.Min(200, text.Length)]}…");
        }
        using var stream = await _web.Http.GetAsync("generate/stream?sampler=" + new string('z', 6000));
        Assert.Equal(HttpStatusCode.BadRequest, stream.StatusCode);
        Assert.True((await stream.Content.ReadAsStringAsync()).Length < 1000);
    }
}
