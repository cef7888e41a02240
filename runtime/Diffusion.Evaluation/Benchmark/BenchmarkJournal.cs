using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Evaluation.Benchmark;

/// <summary>
/// A benchmark's rows as they are measured, so that an interrupted run (a session's end, Ctrl-C, a crash) resumes where
/// it stopped instead of starting over — a full sweep takes hours on a CPU. The file is JSON lines: first the setup
/// (what every row's numbers depend on: the model's and classifier's SHA-256, the data, seed, guidance, device), then
/// one line per measured row with the time it took and the sitting it was measured in. Each row is appended and flushed
/// to disk before the next starts; a last line cut off mid-write is dropped on resume, any other damage is an error.
/// </summary>
public sealed class BenchmarkJournal : IDisposable
{
    /// <summary>The journal's file name inside the benchmark's folder.</summary>
    public const string FileName = "journal.jsonl";

    /// <summary>Journals larger than this are not read (a benchmark's rows take a few hundred bytes each).</summary>
    public const long MaxBytes = 16 << 20;

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        // class accuracy is NaN for unconditional models
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // a file, not a web page: quotes stay readable
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly FileStream _stream;
    private readonly Dictionary<BenchmarkConfiguration, BenchmarkRow> _measured;
    private readonly Dictionary<BenchmarkRow, double> _earlierSeconds = new(ReferenceEqualityComparer.Instance);

    /// <summary>The journal's path.</summary>
    public string Path { get; }
    /// <summary>Rows measured in earlier sittings, in the order they were measured.</summary>
    public IReadOnlyList<BenchmarkRow> Earlier { get; }
    /// <summary>Wall time the earlier sittings spent measuring their rows.</summary>
    public TimeSpan EarlierTime => TimeSpan.FromSeconds(_earlierSeconds.Values.Sum());
    /// <summary>This sitting's number: 1 for a fresh run, one more than the last sitting's on resume.</summary>
    public int Sitting { get; }

    private BenchmarkJournal(string path, FileStream stream, IReadOnlyList<Line> earlier)
    {
        Path = path;
        _stream = stream;
        _measured = [];
        foreach (var line in earlier)
        {
            var row = new BenchmarkRow(line.Result, line.Configuration.Tolerance)
            {
                Headline = line.Configuration.Headline,
            };
            _measured[line.Configuration] = row;
            _earlierSeconds[row] = line.Seconds;
        }
        Earlier = earlier.Select(e => _measured[e.Configuration]).ToList();
        Sitting = earlier.Count == 0 ? 1 : earlier.Max(e => e.Sitting) + 1;
    }

    /// <summary>
    /// A new journal in <paramref name="folder"/> for <paramref name="setup"/>, replacing any earlier one.
    /// </summary>
    public static BenchmarkJournal Start(string folder, IReadOnlyDictionary<string, string> setup)
    {
        var path = System.IO.Path.Combine(folder, FileName);
        AtomicFile.Write(path, s =>
            s.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new Header(setup), Json) + "\n")));
        return new BenchmarkJournal(path, OpenForAppend(path), []);
    }

    /// <summary>
    /// Continues the journal in <paramref name="folder"/>, or starts one where there is none. Its setup must equal
    /// <paramref name="setup"/>: rows measured with another model, data, seed or device are not this run's (the error
    /// names what differs).
    /// </summary>
    public static BenchmarkJournal Resume(string folder, IReadOnlyDictionary<string, string> setup)
    {
        var path = System.IO.Path.Combine(folder, FileName);
        if (!File.Exists(path)) return Start(folder, setup);
        if (new FileInfo(path).Length > MaxBytes)
            throw new DiffusionException($"'{path}' is larger than {MaxBytes >> 20} MB: not a benchmark journal.");
        var bytes = File.ReadAllBytes(path);
        int whole = Array.LastIndexOf(bytes, (byte)'\n') + 1; // a last line without its newline was cut off mid-write
        var usable = Encoding.UTF8.GetString(bytes, 0, whole).Split('\n').SkipLast(1).ToList();

        var header = Parse<Header>(path, usable, 0);
        if (header?.Setup is not { } saved) throw new DiffusionException($"'{path}' line 1 is not a benchmark setup.");
        var differences = setup.Keys.Union(saved.Keys)
            .Where(k => saved.GetValueOrDefault(k) != setup.GetValueOrDefault(k))
            .Select(k =>
                $"{k} {saved.GetValueOrDefault(k) ?? "(none)"} → {setup.GetValueOrDefault(k) ?? "(none)"}").ToList();
        if (differences.Count > 0)
            throw new DiffusionArgumentException("Resume", $"'{path}' was measured with "
                + $"another setup ({string.Join("; ", differences)}); start over instead of resuming.");

        var earlier = new List<Line>();
        for (int i = 1; i < usable.Count; i++)
        {
            var line = Parse<Line>(path, usable, i);
            var why = line is not { Result: not null, Configuration.Sampler: not null } ? "a field is missing"
                : line.Sitting < 1 || !(line.Seconds >= 0 && line.Seconds < 1e9) ? "its sitting or time is out of range"
                : Implausible(line);
            if (why is not null)
                throw new DiffusionException($"'{path}' line {i + 1} is not a benchmark row ({why}): the journal is " +
                    "damaged (start over instead of resuming).");
            earlier.Add(line!);
        }
        if (whole < bytes.Length)
        {
            // Drop the torn line, so that the next row starts on a line of its own.
            using var truncate = new FileStream(path, FileMode.Open, FileAccess.Write);
            truncate.SetLength(whole);
        }
        return new BenchmarkJournal(path, OpenForAppend(path), earlier);
    }

    /// <summary>Wall time the earlier sittings spent on those of <paramref name="rows"/> they measured.</summary>
    public TimeSpan EarlierTimeOf(IEnumerable<BenchmarkRow> rows) =>
        TimeSpan.FromSeconds(rows.Distinct(ReferenceEqualityComparer.Instance).Sum(r =>
            _earlierSeconds.GetValueOrDefault((BenchmarkRow)r!)));

    /// <summary>The row measured earlier for <paramref name="configuration"/>, if any.</summary>
    public BenchmarkRow? Find(BenchmarkConfiguration configuration) => _measured.GetValueOrDefault(configuration);

    /// <summary>Appends the row just measured for <paramref name="configuration"/> and flushes it to disk.</summary>
    public void Append(BenchmarkConfiguration configuration, BenchmarkRow row, TimeSpan took)
    {
        var line = JsonSerializer.Serialize(new Line(Sitting, took.TotalSeconds, configuration, row.Result), Json)
            + "\n";
        _stream.Write(Encoding.UTF8.GetBytes(line));
        _stream.Flush(flushToDisk: true);
        _measured[configuration] = row;
    }

    /// <summary>The SHA-256 of a file, in hex: what a journal's setup names a model or classifier by.</summary>
    public static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();

    private static FileStream OpenForAppend(string path) =>
        new(path, FileMode.Append, FileAccess.Write, FileShare.Read);

    private static T? Parse<T>(string path, List<string> lines, int index)
    {
        if (index >= lines.Count) throw new DiffusionException($"'{path}' is empty: not a benchmark journal.");
        try
        {
            return JsonSerializer.Deserialize<T>(lines[index], Json);
        }
        catch (JsonException)
        {
            throw new DiffusionException($"'{path}' line {index + 1} is not valid JSON: the journal is damaged " +
                $"(start over instead of resuming).");
        }
    }

    /// <summary>
    /// What about a parsed row's numbers no measurement gives (a field missing, out of range), or null.
    /// </summary>
    private static string? Implausible(Line line)
    {
        var (r, c) = (line.Result!, line.Configuration!);
        return r.Sampler is null ? "no sampler in its result"
            : r.Count != c.Count || r.Count <= 0 ? $"its result counts {r.Count} images, its configuration {c.Count}"
            : !(r.FrechetDistance >= 0 && double.IsFinite(r.FrechetDistance)) ? $"Fréchet distance {r.FrechetDistance}"
            : !(r.EvaluationsPerImage > 0 && double.IsFinite(r.EvaluationsPerImage))
                ? $"{r.EvaluationsPerImage} network evaluations per image"
            : !(r.MillisecondsPerImage >= 0 && double.IsFinite(r.MillisecondsPerImage))
                ? $"{r.MillisecondsPerImage} ms per image"
            : !(double.IsNaN(r.ClassAccuracy) || r.ClassAccuracy is >= 0 and <= 1)
                ? $"class accuracy {r.ClassAccuracy}"
            : r.PerClassAccuracy is null ? "no per-class accuracy"
            : null;
    }

    private sealed record Header(IReadOnlyDictionary<string, string> Setup);

    private sealed record Line(int Sitting, double Seconds, BenchmarkConfiguration Configuration, EvalResult Result);
}
