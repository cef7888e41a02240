using System.Text.Json.Nodes;
using Diffusion.Runtime.Text;
using Xunit;

namespace Diffusion.Tests;

/// <summary>The runtime's NFC against Python's unicodedata (tests/Fixtures/Unicode, interop/unicode/make_nfc_table.py).</summary>
public class NfcTests
{
    [Fact]
    public void Every_string_normalizes_as_python_normalizes_it()
    {
        var data = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "Unicode",
            "nfc.json")))!;
        var cases = data["cases"]!.AsArray();
        Assert.True(cases.Count >= 1000);
        var wrong = cases.Select(c => ((string)c![0]!, (string)c[1]!)).Where(c => Nfc.Normalize(c.Item1) != c.Item2)
            .Select(c => $"{string.Join(" ", c.Item1.EnumerateRunes().Select(r => r.Value.ToString("X4")))} -> " +
                $"{string.Join(" ", Nfc.Normalize(c.Item1).EnumerateRunes().Select(r => r.Value.ToString("X4")))}, " +
                $"expected {string.Join(" ", c.Item2.EnumerateRunes().Select(r => r.Value.ToString("X4")))}")
            .ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {cases.Count} differ:\n{string.Join("\n", wrong.Take(10))}");
    }

    [Theory]
    [InlineData("e\u0301", "\u00e9")]
    [InlineData("\u1100\u1161\u11a8", "\uac01")] // Hangul jamo compose algorithmically
    [InlineData("\u212b", "\u00c5")] // a singleton decomposition (Ångström sign)
    [InlineData("a\u0323\u0302", "\u1ead")] // reordered, then composed twice
    [InlineData("plain ascii", "plain ascii")]
    public void Known_normalizations(string input, string expected) => Assert.Equal(expected, Nfc.Normalize(input));
}
