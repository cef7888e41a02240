using System.Reflection;
using System.Text;

namespace Diffusion.Runtime.Text;

/// <summary>
/// Unicode Normalization Form C (UAX #15: canonical decomposition, canonical ordering, canonical composition, Hangul
/// algorithmically) from the canonical data of Python's unicodedata, embedded as NfcTable.txt — so that prompts
/// normalize as transformers' tokenizer normalizes them, and also where .NET runs without ICU (globalization-invariant
/// mode, where <see cref="string.Normalize()"/> leaves text as it is).
/// </summary>
public static class Nfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Lazy<Tables> Data = new(Load);

    private sealed record Tables(Dictionary<int, int[]> Decompositions, Dictionary<long, int> Compositions,
        (int First, int Last, int Class)[] Classes);

    /// <summary><paramref name="text"/> in NFC.</summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.All(c => c < 0x300)) return text; // nothing below U+0300 decomposes or combines
        var tables = Data.Value;
        var cps = new List<int>(text.Length);
        foreach (var rune in text.EnumerateRunes()) Decompose(rune.Value, cps, tables);
        // canonical ordering: a stable sort of each run of non-starters by combining class
        for (int i = 1; i < cps.Count; i++)
        {
            int c = ClassOf(cps[i], tables);
            if (c == 0) continue;
            int j = i;
            while (j > 0 && ClassOf(cps[j - 1], tables) > c) { (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]); j--; }
        }
        Compose(cps, tables);
        var result = new StringBuilder(text.Length);
        foreach (var cp in cps) result.Append(char.ConvertFromUtf32(cp));
        return result.ToString();
    }

    private static void Decompose(int cp, List<int> into, Tables tables)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            int s = cp - SBase;
            into.Add(LBase + s / NCount);
            into.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) into.Add(TBase + s % TCount);
            return;
        }
        if (tables.Decompositions.TryGetValue(cp, out var parts))
            foreach (var part in parts) Decompose(part, into, tables);
        else into.Add(cp);
    }

    private static void Compose(List<int> cps, Tables tables)
    {
        if (cps.Count == 0) return;
        int starter = 0, kept = 1;
        int lastClass = ClassOf(cps[0], tables) == 0 ? 0 : 256; // a leading non-starter blocks everything after it
        for (int i = 1; i < cps.Count; i++)
        {
            int cp = cps[i], c = ClassOf(cp, tables);
            if ((lastClass < c || lastClass == 0) && Composite(cps[starter], cp, tables) is int composite)
            {
                cps[starter] = composite;
                continue;
            }
            if (c == 0) starter = kept;
            lastClass = c;
            cps[kept++] = cp;
        }
        cps.RemoveRange(kept, cps.Count - kept);
    }

    private static int? Composite(int a, int b, Tables tables)
    {
        if (a is >= LBase and < LBase + LCount && b is >= VBase and < VBase + VCount)
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a is >= SBase and < SBase + SCount && (a - SBase) % TCount == 0 && b is > TBase and < TBase + TCount)
            return a + (b - TBase);
        return tables.Compositions.TryGetValue(((long)a << 21) | (uint)b, out var c) ? c : null;
    }

    private static int ClassOf(int cp, Tables tables)
    {
        var classes = tables.Classes;
        int lo = 0, hi = classes.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (cp < classes[mid].First) hi = mid - 1;
            else if (cp > classes[mid].Last) lo = mid + 1;
            else return classes[mid].Class;
        }
        return 0;
    }

    private static Tables Load()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Diffusion.Runtime.Text.NfcTable.txt")
            ?? throw new InvalidOperationException("the NFC table resource is missing from Diffusion.Runtime");
        using var reader = new StreamReader(stream);
        var decompositions = new Dictionary<int, int[]>();
        var excluded = new HashSet<int>();
        var classes = new List<(int, int, int)>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var f = line.Split(' ');
            int Hex(int i) => Convert.ToInt32(f[i], 16);
            switch (f[0])
            {
                case "D": decompositions[Hex(1)] = [.. Enumerable.Range(2, f.Length - 2).Select(Hex)]; break;
                case "X": excluded.Add(Hex(1)); break;
                case "C": classes.Add((Hex(1), Hex(2), int.Parse(f[3]))); break;
            }
        }
        var compositions = new Dictionary<long, int>();
        foreach (var (cp, parts) in decompositions)
            if (parts.Length == 2 && !excluded.Contains(cp)) compositions[((long)parts[0] << 21) | (uint)parts[1]] = cp;
        return new Tables(decompositions, compositions, [.. classes]);
    }
}
