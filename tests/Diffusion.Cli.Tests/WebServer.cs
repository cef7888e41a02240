using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Diffusion.Cli.Tests;

/// <summary>
/// The sample web app (built by samples/build-feed.sh; ./test.sh runs it) as a process on a free loopback port, with
/// its CPU time and resident memory read from /proc.
/// </summary>
public class WebServer : IDisposable
{
    private readonly Process _process;
    public HttpClient Http { get; }
    public string Url { get; }

    public static string Model => Path.Combine(TestFolders.Repository, "models", "fashion-mnist", "model.onnx");

    public static string Built(string app)
    {
        var dll = Path.Combine(TestFolders.Repository, "samples", app, "bin", "Release", "net10.0", $"{app}.dll");
        Assert.True(File.Exists(dll),
            $"{dll} is missing: run samples/build-feed.sh (./test.sh does) to pack the libraries and build the "
                + "samples");
        return dll;
    }

    public WebServer(params string[] settings)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        Url = $"http://127.0.0.1:{port}/";
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Built("WebApp"), "--Model", Model, "--urls", Url }.Concat(settings))
            start.ArgumentList.Add(a);
        _process = Process.Start(start)!;
        _ = _process.StandardOutput.ReadToEndAsync();
        _ = _process.StandardError.ReadToEndAsync();
        Http = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromMinutes(2) };
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (Http.GetAsync("info").GetAwaiter().GetResult().IsSuccessStatusCode) break;
            }
            catch (HttpRequestException) { }
            if (_process.HasExited || watch.Elapsed > TimeSpan.FromSeconds(60))
                throw new InvalidOperationException(
                    $"the web app did not start (exit {(_process.HasExited ? _process.ExitCode : -1)})");
            Thread.Sleep(200);
        }
    }

    /// <summary>The server's CPU time so far (user + system, all threads).</summary>
    public TimeSpan CpuTime
    {
        get
        {
            var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // after "pid (comm) "; field 3 is index 0
            long ticks = long.Parse(fields[11]) + long.Parse(fields[12]); // utime, stime in clock ticks (100 Hz)
            return TimeSpan.FromSeconds(ticks / 100.0);
        }
    }

    /// <summary>The server's resident memory, in MiB.</summary>
    public double ResidentMiB
    {
        get
        {
            var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith("VmRSS:"));
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        }
    }

    public void Dispose()
    {
        Http.Dispose();
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
        GC.SuppressFinalize(this);
    }
}
