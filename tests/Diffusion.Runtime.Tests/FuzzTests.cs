using System.Buffers.Binary;
using System.Text;
using Diffusion.Runtime.Imaging;
using Xunit.Abstractions;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// A seeded fuzzer for the decoders that read files from outside (every image format through ImageSharp, .npy): each
/// mutated input must decode or be refused with a <see cref="DiffusionException"/> — no other exception — in bounded
/// memory. The suite runs 1 000 cases per format; a nightly-style run takes more:
/// <c>DIFFUSION_FUZZ_CASES=100000 ./test.sh --filter FuzzTests</c>
/// (<c>DIFFUSION_FUZZ_SEED</c> picks another stream). A failure names the seed and case that reproduce it.
/// </summary>
public class FuzzTests(ITestOutputHelper log)
{
    private static int Cases => int.TryParse(Environment.GetEnvironmentVariable("DIFFUSION_FUZZ_CASES"), out var n)
        && n > 0 ? n : 1000;
    private static int Seed => int.TryParse(Environment.GetEnvironmentVariable("DIFFUSION_FUZZ_SEED"), out var s) ? s
        : 20261123;
    // ImageLimits.Default: 64 MiB files; pixels and the decoders' buffers come from ImageSharp's allocator (counted in
    // the peak), this bounds what is allocated on the managed heap besides
    private const long AllocationBound = 96L << 20;

    // ImageSharp 2.1.13's lossless WebP decoder sizes its Huffman tables by the number of prefix-code groups the file
    // declares (up to 2¹⁶, not bounded by the image's size) on the managed heap: a crafted 28×28 file took 312.6 MiB in
    // 100 000 cases (seed 20261123). Bounded, but not by the reader's limits; README "Images" says so.
    private const long WebpAllocationBound = 400L << 20;

    /// <summary>
    /// What a run found: <see cref="DecoderFaults"/> counts the refusals where ImageSharp's decoder failed with an
    /// exception that is not one of its format errors (refused all the same, one line; see ImageFile.IsDecoderFault).
    /// </summary>
    private sealed record Report(int Cases, int Decoded, int Refused, int DecoderFaults, List<string> Crashes,
        long PeakAllocated, long PeakDecoder);

    /// <summary>A case that takes longer than this is a hang (the decoders take milliseconds).</summary>
    private static readonly TimeSpan HangAfter = TimeSpan.FromSeconds(20);

    private static Report Fuzz(IReadOnlyList<byte[]> seeds, Func<Random, byte[], byte[]> mutate, Action<byte[],
        int> decode)
    {
        var random = new Random(Seed);
        int decoded = 0, refused = 0, faults = 0;
        long peak = 0, peakDecoder = 0;
        var crashes = new List<string>();
        for (int i = 0; i < Cases; i++)
        {
            var input = mutate(random, seeds[random.Next(seeds.Count)]);
            try
            {
                // on a worker, so that a decoder that never returns fails the test instead of hanging the suite
                var task = Task.Factory.StartNew(() =>
                {
                    long start = GC.GetAllocatedBytesForCurrentThread();
                    ImageFile.LastDecoderPeak = 0;
                    try
                    {
                        decode(input, i);
                    }
                    finally
                    {
                        peak = Math.Max(peak, GC.GetAllocatedBytesForCurrentThread() - start);
                        peakDecoder = Math.Max(peakDecoder, ImageFile.LastDecoderPeak);
                    }
                }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                if (!task.Wait(HangAfter))
                {
                    crashes.Add($"seed {Seed} case {i}: no result after {HangAfter.TotalSeconds} s (a hang)");
                    break;
                }
                decoded++;
            }
            catch (AggregateException a) when (a.InnerException is DiffusionException e)
            {
                refused++;
                if (e.InnerException is { } inner && ImageFile.IsDecoderFault(inner)) faults++;
                if (e.Message.Contains('\n')) crashes.Add($"case {i}: a message of several lines: {e.Message}");
            }
            catch (AggregateException a)
            {
                var e = a.InnerException!;
                crashes.Add($"seed {Seed} case {i}: {e.GetType().Name}: {e.Message}");
            }
        }
        return new Report(Cases, decoded, refused, faults, crashes, peak, peakDecoder);
    }

    private void Check(string format, Report r, long allocationBound = AllocationBound)
    {
        log.WriteLine($"{format}: {r.Cases} cases, {r.Decoded} decoded, {r.Refused} refused ({r.DecoderFaults} of " +
            $"them by a decoder fault), {r.Crashes.Count} " +
            $"crashes, peak {r.PeakAllocated / 1048576.0:0.0} MiB allocated on the heap and " +
            $"{r.PeakDecoder / 1048576.0:0.0} MiB held by the decoder in one case");
        Assert.True(r.Crashes.Count == 0, string.Join("\n", r.Crashes.Take(10)));
        Assert.True(r.PeakAllocated < allocationBound, $"one case allocated {r.PeakAllocated:N0} bytes");
        Assert.True(r.PeakDecoder <= ImageLimits.Default.MaxDecoderBytes, $"one case held {r.PeakDecoder:N0} bytes");
        Assert.True(r.Decoded > 0 && r.Refused > 0, "the mutations should produce both decodable and broken inputs");
    }

    // ---- images ----

    /// <summary>
    /// Seeds of <paramref name="format"/>: ImageSharp's encoders at three sizes (and, for PNG, a hand-made palette
    /// image).
    /// </summary>
    private static List<byte[]> ImageSeeds(string format)
    {
        var seeds = new List<byte[]>();
        foreach (var (w, h) in new[] { (28, 28), (5, 9), (1, 1) })
            foreach (var (name, data) in ImageFixtures.EveryFormat(w, h))
                if (name.Split('-')[0] == format) seeds.Add(data);
        if (format == "png") seeds.Add(PalettePng());
        return seeds;
    }

    private static byte[] PalettePng()
    {
        var body = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(body, 6);
        BinaryPrimitives.WriteInt32BigEndian(body.AsSpan(4), 4);
        body[8] = 8; body[9] = 3;
        var raw = new byte[4 * 7];
        for (int i = 0; i < raw.Length; i++) raw[i] = (byte)(i % 7 == 0 ? i % 5 : i % 3);
        using var compressed = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Optimal,
            leaveOpen: true)) z.Write(raw);
        return [137, 80, 78, 71, 13, 10, 26, 10, .. Chunk("IHDR", body),
            .. Chunk("PLTE", new byte[9] { 255, 0, 0, 0, 255, 0, 0, 0, 255 }), .. Chunk("IDAT", compressed.ToArray()),
                .. Chunk("IEND", [])];
    }

    private static byte[] Chunk(string type, byte[] body) => HostileFiles.Chunk(type, body);

    /// <summary>
    /// Byte-level damage half the time; otherwise damage inside one chunk with its CRC fixed, which reaches the decoder
    /// behind the CRC check.
    /// </summary>
    private static byte[] MutatePng(Random random, byte[] seed)
    {
        if (random.Next(2) == 0) return MutateBytes(random, seed);
        var chunks = new List<(string Type, byte[] Body)>();
        for (int pos = 8; pos + 12 <= seed.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(seed.AsSpan(pos));
            chunks.Add((Encoding.ASCII.GetString(seed, pos + 4, 4), seed.AsSpan(pos + 8, length).ToArray()));
            pos += 12 + length;
        }
        int victim = random.Next(chunks.Count);
        var (type, body) = chunks[victim];
        switch (random.Next(5))
        {
            case 0 when body.Length > 0: body = MutateBytes(random, body); break;
            case 1 when type == "IHDR": // sizes from tiny to absurd
                BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(random.Next(2) * 4),
                    (uint)(random.Next(4) switch
                    {
                        0 => random.Next(0, 5), 1 => random.Next(0, 5000), 2 => 1 << random.Next(31), _ =>
                            random.Next(),
                    }));
                break;
            // a duplicated chunk
            case 2: chunks.Insert(random.Next(chunks.Count + 1), chunks[random.Next(chunks.Count)]); break;
            case 3: chunks.RemoveAt(victim); break;
            default: if (body.Length > 0) body[random.Next(body.Length)] = (byte)random.Next(256); break;
        }
        if (victim < chunks.Count && chunks[victim].Type == type) chunks[victim] = (type, body);
        return [137, 80, 78, 71, 13, 10, 26, 10, .. chunks.SelectMany(c => Chunk(c.Type, c.Body))];
    }

    private static byte[] MutateBytes(Random random, byte[] seed)
    {
        var data = seed.ToList();
        int edits = 1 + random.Next(8);
        for (int e = 0; e < edits && data.Count > 0; e++)
        {
            int at = random.Next(data.Count);
            switch (random.Next(5))
            {
                case 0: data[at] ^= (byte)(1 << random.Next(8)); break;
                case 1: data[at] = (byte)random.Next(256); break;
                case 2: data.RemoveRange(at, data.Count - at); break; // truncate
                case 3: data.InsertRange(at,
                    Enumerable.Range(0, 1 + random.Next(16)).Select(_ => (byte)random.Next(256))); break;
                default: data[at] = random.Next(2) == 0 ? (byte)0xFF : (byte)0; break;
            }
        }
        return data.ToArray();
    }

    /// <summary>
    /// Damage in the first 64 bytes (where the headers are: sizes, bit depths, counts) with extreme values half the
    /// time; anywhere otherwise.
    /// </summary>
    private static byte[] MutateHeaders(Random random, byte[] seed)
    {
        if (random.Next(2) == 0 || seed.Length < 8) return MutateBytes(random, seed);
        var data = (byte[])seed.Clone();
        for (int e = 1 + random.Next(3); e > 0; e--)
        {
            int at = random.Next(Math.Min(64, data.Length - 4));
            uint value = random.Next(4) switch
            {
                0 => 0, 1 => uint.MaxValue, 2 => (uint)random.Next(0, 70000), _ => (uint)random.Next(),
            };
            BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(at), value);
        }
        return data;
    }

    [Theory]
    [InlineData("png")]
    [InlineData("jpeg")]
    [InlineData("webp")]
    [InlineData("gif")]
    [InlineData("bmp")]
    [InlineData("tga")]
    public void Mutated_images_decode_or_are_refused_cleanly(string format)
    {
        var report = Fuzz(ImageSeeds(format), format == "png" ? MutatePng : MutateHeaders,
            (data, i) => ImageFile.Decode(data, $"case-{i}.{format}",
                new ImageReadOptions { Channels = 3, Width = 16, Height = 16 }));
        Check(format, report, format == "webp" ? WebpAllocationBound : AllocationBound);
    }

    // ---- .npy ----

    private static List<byte[]> NpySeeds()
    {
        var folder = Fixtures.TempFolder();
        var seeds = new List<byte[]>();
        foreach (var shape in new[] { new[] { 2, 1, 3, 3 }, new[] { 5 }, new[] { 1, 3, 2, 2 } })
        {
            var path = Path.Combine(folder, "seed.npy");
            Npy.Save(path, Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(v => v * 0.5f).ToArray(),
                shape);
            seeds.Add(File.ReadAllBytes(path));
        }
        Directory.Delete(folder, recursive: true);
        return seeds;
    }

    private const string HeaderAlphabet = "0123456789,() '-.:_TrueFalsef<>48{}x";

    /// <summary>Damage to the text header (numbers, quotes, keys) half the time, to the bytes otherwise.</summary>
    private static byte[] MutateNpy(Random random, byte[] seed)
    {
        if (random.Next(2) == 0) return MutateBytes(random, seed);
        var data = (byte[])seed.Clone();
        int headerLength = BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(8));
        for (int e = 1 + random.Next(4); e > 0; e--)
            data[10 + random.Next(headerLength - 1)] = (byte)HeaderAlphabet[random.Next(HeaderAlphabet.Length)];
        if (random.Next(4) == 0) data[6] = (byte)random.Next(4); // format version
        return data;
    }

    [Fact]
    public void Mutated_npy_files_load_or_are_refused_cleanly()
    {
        var folder = Fixtures.TempFolder();
        var path = Path.Combine(folder, "case.npy");
        var report = Fuzz(NpySeeds(), MutateNpy, (data, _) =>
        {
            File.WriteAllBytes(path, data);
            Npy.Load(path);
        });
        Directory.Delete(folder, recursive: true);
        Check(".npy", report);
    }
}
