using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Cli.Tests;

/// <summary>
/// The sample apps, built by samples/build-feed.sh against the packages of the local feed (./test.sh runs it first):
/// the console app writes a grid; the web app serves PNGs of the requested size, shares one model among concurrent
/// requests with the images of sequential ones, answers bad requests with 400 and a reason, and its page works in
/// headless Chromium.
/// </summary>
public sealed class SampleAppTests : IClassFixture<SampleAppTests.WebApp>
{
    private readonly WebApp _web;

    public SampleAppTests(WebApp web) => _web = web;

    private static string Repo => TestFolders.Repository;

    /// <summary>
    /// The web app for the whole class, with room in its queue for the concurrent tests' requests (the load and
    /// refusal tests run their own, with the defaults: <see cref="WebServerTests"/>).
    /// </summary>
    public sealed class WebApp() : WebServer("--Server:QueueCapacity", "16");

    private async Task<byte[]> Generate(object body)
    {
        using var response = await _web.Http.PostAsJsonAsync("generate", body);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadAsByteArrayAsync();
    }

    [Fact]
    public void Every_package_the_libraries_pull_in_is_audited_for_vulnerabilities_at_restore()
    {
        foreach (var project in new[]
        {
            "runtime/Diffusion.Runtime/Diffusion.Runtime.csproj", "trainer/Diffusion.Trainer/Diffusion.Trainer.csproj",
        })
        {
            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[]
            {
                "msbuild", Path.Combine(Repo, project), "-getProperty:NuGetAudit", "-getProperty:NuGetAuditMode",
                "-getProperty:NuGetAuditLevel", "-getProperty:TreatWarningsAsErrors",
            })
                info.ArgumentList.Add(a);
            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            using var json = JsonDocument.Parse(output);
            var properties = json.RootElement.GetProperty("Properties");
            Assert.Equal(("true", "all", "low", "true"), (properties.GetProperty("NuGetAudit").GetString(),
                properties.GetProperty("NuGetAuditMode").GetString(),
                    properties.GetProperty("NuGetAuditLevel").GetString(),
                properties.GetProperty("TreatWarningsAsErrors").GetString()));
        }
    }

    [Fact]
    public async Task The_web_app_returns_a_png_of_the_requested_size()
    {
        var png = await Generate(new { @class = "sneaker", steps = 8, seed = 5, count = 4, scale = 3 });
        var image = ImageFile.Decode(png, "response");
        // 4 images of 28×28 in a 2×2 grid with 2-pixel gaps (62×62), enlarged 3×.
        Assert.Equal((186, 186, 1), (image.Width, image.Height, image.Channels));
        Assert.True(image.Pixels.Distinct().Count() > 20, "the image should not be flat");
    }

    [Fact]
    public async Task Eight_concurrent_requests_share_the_model_and_give_the_sequential_images()
    {
        var bodies = Enumerable.Range(0, 8).Select(i => new
        {
            @class = (i % 3).ToString(), steps = 6, seed = (ulong)i, count = 2, scale = 1,
        }).ToArray();
        var sequential = new List<byte[]>();
        foreach (var body in bodies) sequential.Add(await Generate(body));
        var concurrent = await Task.WhenAll(bodies.Select(Generate));
        for (int i = 0; i < bodies.Length; i++) Assert.Equal(sequential[i], concurrent[i]);
        Assert.Equal(8, sequential.Select(Convert.ToBase64String).Distinct().Count());
    }

    [Theory]
    [InlineData("""{"class": "spaceship"}""", "'spaceship' is not a class", "class")]
    [InlineData("""{"steps": 5000}""", "steps: must lie in 1…200", "steps")]
    [InlineData("""{"count": 0}""", "count: must lie in 1…64", "count")]
    [InlineData("""{"sampler": "plms"}""", "'plms' is not known", "sampler")]
    [InlineData("""{"guidance": -2, "class": "bag"}""", "expected a weight in 0…100", "guidance")]
    [InlineData("""{"guidance": 1e30, "class": "bag"}""", "expected a weight in 0…100", "guidance")]
    [InlineData("""{not json""", "not a JSON image request", null)]
    [InlineData("", "not a JSON image request", null)]
    public async Task Bad_requests_get_400_with_the_reason_and_the_field(string body, string reason, string? field)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await _web.Http.PostAsync("generate", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Contains(reason, json.GetProperty("error").GetString());
        // The field is data: the library's parameter mapped to the request's own JSON name, never parsed from prose.
        Assert.Equal(field, json.TryGetProperty("field", out var f) ? f.GetString() : null);
    }

    [Fact]
    public async Task The_stream_reports_progress_then_the_image()
    {
        var text = await _web.Http.GetStringAsync("generate/stream?class=bag&steps=4&count=2&scale=1");
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.Split('\n')).ToList();
        Assert.True(events.Count(e => e[0] == "event: progress") >= 4);
        Assert.Equal("event: image", events[^1][0]);
        var png = Convert.FromBase64String(JsonSerializer.Deserialize<string>(events[^1][1]["data: ".Length..])!);
        Assert.Equal(28 * 2 + 3 * 2, ImageFile.Decode(png, "streamed").Width);
    }

    [Fact]
    public async Task The_page_generates_in_headless_chromium()
    {
        const string browser = "/usr/bin/chromium";
        Assert.True(File.Exists(browser), "Debian's chromium is missing: apt-get install chromium (./test.sh does)");
        var profile = TestFolders.Create("chromium-profile");
        var start = new ProcessStartInfo(browser) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking",
            "--disable-component-update", "--disable-sync", $"--user-data-dir={profile}", "--virtual-time-budget=60000",
            "--dump-dom", _web.Url + "?autorun=1&class=bag&steps=4&count=2",
        }) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var dom = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90))) await process.WaitForExitAsync(timeout.Token);
        var html = await dom;
        Assert.Contains("<option value=\"sneaker\">sneaker</option>", html); // the class list came from /info
        var status = System.Text.RegularExpressions.Regex.Match(html,
            "<div id=\"status\"[^>]*>([^<]*)<").Groups[1].Value;
        Assert.True(status == "done", $"the page's status is '{status}'");                   // progress reached the end
        Assert.Contains("src=\"data:image/png;base64,", html);                // and the image arrived
    }

    [Fact]
    public async Task The_console_app_writes_a_grid_from_the_package()
    {
        var output = Path.Combine(TestFolders.Create("console-app"), "grid.png");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { WebServer.Built("ConsoleApp"), WebServer.Model, output, "dress" }) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, await stderr);
        Assert.Contains("16 images 1×28×28", await stdout);
        Assert.Equal(4 * 28 + 5 * 2, ImageFile.Read(output).Width);
    }

    [Fact]
    public async Task The_readmes_csharp_snippet_runs_in_a_new_app_from_the_package()
    {
        var readme = File.ReadAllText(Path.Combine(Repo, "README.md"));
        int section = readme.IndexOf("## C# API", StringComparison.Ordinal);
        int start = readme.IndexOf("```csharp\n", section, StringComparison.Ordinal) + "```csharp\n".Length;
        var snippet = readme[start..readme.IndexOf("```", start, StringComparison.Ordinal)];
        var versionProps = Path.Combine(Repo, "samples", "feed", "version.props");
        Assert.True(File.Exists(versionProps), "samples/feed is missing: run samples/build-feed.sh (./test.sh does)");
        var version = System.Text.RegularExpressions.Regex.Match(File.ReadAllText(versionProps),
            "<DiffusionPackageVersion>([^<]+)<").Groups[1].Value;

        var app = TestFolders.Create("readme-app");
        File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><ImplicitUsings>enable</ImplicitUsings><Nullable>enable</Nullable></PropertyGroup>
              <ItemGroup><PackageReference Include="Diffusion.Runtime" Version="{version}" /></ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration><packageSources><add key="diffusion-local" value="{Path.Combine(Repo, "samples", "feed")}" /></packageSources></configuration>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), snippet);
        File.CreateSymbolicLink(Path.Combine(app, "models"), Path.Combine(Repo, "models"));

        async Task<(int Code, string Output)> Dotnet(params string[] args)
        {
            var info = new ProcessStartInfo("dotnet")
            {
                WorkingDirectory = app, RedirectStandardOutput = true, RedirectStandardError = true,
            };
            foreach (var a in args) info.ArgumentList.Add(a);
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return (process.ExitCode, await stdout + stderr);
        }
        var (code, output) = await Dotnet("build", "-c", "Release", "--nologo", "-v", "quiet");
        Assert.True(code == 0, $"the snippet does not build in a new app:\n{output}");
        (code, output) = await Dotnet(Path.Combine(app, "bin", "Release", "net10.0", "App.dll"));
        Assert.True(code == 0, $"the snippet fails at run time:\n{output}");
        Assert.Equal(4 * (4 * 28 + 5 * 2), ImageFile.Read(Path.Combine(app, "grid.png")).Width);
        Assert.Equal([16, 1, 28, 28], Npy.Load(Path.Combine(app, "x.npy")).Shape);
    }
}
