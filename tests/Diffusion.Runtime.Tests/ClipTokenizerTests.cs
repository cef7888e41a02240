using System.Text.Json.Nodes;
using Diffusion.Runtime;
using Diffusion.Runtime.Text;
using Xunit;

namespace Diffusion.Tests;

/// <summary>
/// The CLIP tokenizer against transformers' own CLIPTokenizer (tests/Fixtures/Clip, made by
/// interop/transformers/make_clip_fixtures.py) on a vocabulary learned for the test: the same tokens and the same
/// padded ids, with SD 1.x's pad token and SD 2.x's "!", on every prompt.
/// </summary>
public class ClipTokenizerTests
{
    private static string Fixture(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "Fixtures", "Clip", .. parts]);

    private static readonly JsonArray Cases =
        (JsonArray)JsonNode.Parse(File.ReadAllText(Fixture("cases.json")))!["cases"]!;

    public static TheoryData<string> Layouts => new() { "sd1", "sd2" };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Every_prompt_gives_transformers_tokens_and_ids(string layout)
    {
        var tokenizer = ClipTokenizer.Load(Fixture(layout, "tokenizer"));
        Assert.True(Cases.Count >= 200);
        var wrong = new List<string>();
        foreach (var c in Cases)
        {
            var prompt = (string)c!["prompt"]!;
            var tokens = c[$"tokens_{layout}"]!.AsArray().Select(t => (string)t!).ToArray();
            var ids = c[$"ids_{layout}"]!.AsArray().Select(t => (int)t!).ToArray();
            var encoded = tokenizer.Encode(prompt);
            var actualTokens = tokenizer.Tokenize(prompt);
            if (!actualTokens.SequenceEqual(tokens) || !encoded.Ids.SequenceEqual(ids)
                || (encoded.Truncated is not null) != (bool)c["truncated"]!)
                wrong.Add($"{Escape(prompt)}: tokens [{string.Join(" ", actualTokens)}] vs [{string.Join(" ", tokens)}]; " +
                    $"ids [{string.Join(" ", encoded.Ids)}] vs [{string.Join(" ", ids)}]");
        }
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {Cases.Count} prompts differ:\n" +
            string.Join("\n", wrong.Take(8)));
    }

    private static string Escape(string s) => string.Concat(s.Select(ch => ch < ' ' || ch > '~'
        ? $"\\u{(int)ch:x4}" : ch.ToString()));

    [Fact]
    public void The_two_layouts_read_their_pad_tokens_and_lengths_from_their_files()
    {
        var sd1 = ClipTokenizer.Load(Fixture("sd1", "tokenizer"));
        var sd2 = ClipTokenizer.Load(Fixture("sd2", "tokenizer"));
        Assert.Equal(77, sd1.Config.ModelMaxLength);
        Assert.Equal(sd1.EosId, sd1.PadId);
        Assert.Equal(0, sd2.PadId); // "!", the first byte symbol
        var p = sd1.Encode("a photo of a cat");
        Assert.Equal(sd1.BosId, p.Ids[0]);
        Assert.Equal(sd1.EosId, p.Ids[p.Length - 1]);
        Assert.Null(p.Truncated);
    }

    [Fact]
    public void The_byte_symbols_are_transformers_bytes_to_unicode_in_vocabulary_order()
    {
        // the fixture vocabulary's first 512 entries were written from transformers' own bytes_to_unicode
        var vocab = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>(
            File.ReadAllText(Fixture("sd1", "tokenizer", "vocab.json")))!;
        var byId = vocab.ToDictionary(kv => kv.Value, kv => kv.Key);
        for (int i = 0; i < 256; i++)
        {
            Assert.Equal(byId[i], ClipTokenizer.ByteSymbols[i]);
            Assert.Equal(byId[256 + i], ClipTokenizer.ByteSymbols[i] + "</w>");
        }
    }

    [Fact]
    public void Truncation_keeps_bos_and_eos_and_says_what_was_cut()
    {
        var tokenizer = ClipTokenizer.Load(Fixture("sd1", "tokenizer"));
        var words = string.Join(" ", Enumerable.Range(0, 100).Select(i => i % 2 == 0 ? "red" : "blue"));
        var p = tokenizer.Encode(words + " tailword");
        Assert.Equal(77, p.Length);
        Assert.Equal(tokenizer.EosId, p.Ids[76]);
        Assert.Equal(75, p.Tokens.Count);
        Assert.EndsWith("tailword", p.Truncated);
        Assert.StartsWith("blue red", p.Truncated); // word 75 on: 75 tokens fit between BOS and EOS
    }

    [Fact]
    public void A_broken_tokenizer_folder_is_refused_in_one_line_naming_the_file()
    {
        var good = Fixture("sd1", "tokenizer");
        string Copy(Action<string> damage)
        {
            var folder = TestFolders.Create("tokenizer");
            foreach (var f in Directory.GetFiles(good)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
            damage(folder);
            return folder;
        }
        void Refused(string folder, string words)
        {
            var e = Assert.Throws<DiffusionException>(() => ClipTokenizer.Load(folder));
            Assert.Contains(words, e.Message);
            Assert.DoesNotContain("\n", e.Message);
        }
        Refused(Copy(f => File.Delete(Path.Combine(f, "merges.txt"))), "has no merges.txt");
        Refused(Copy(f => File.Delete(Path.Combine(f, "vocab.json"))), "has no vocab.json");
        Refused(Copy(f => File.WriteAllText(Path.Combine(f, "merges.txt"), "#version: 0.2\n")), "holds no merges");
        Refused(Copy(f => File.WriteAllText(Path.Combine(f, "merges.txt"), "#version: 0.2\na b c\n")), "line 2");
        Refused(Copy(f => File.WriteAllText(Path.Combine(f, "vocab.json"), "[1,2]")), "token → id");
        Refused(Copy(f => File.WriteAllText(Path.Combine(f, "vocab.json"), "{\"a\": 1, \"b\": 1}")), "distinct");
        Refused(Copy(f => File.WriteAllText(Path.Combine(f, "special_tokens_map.json"), "{\"pad_token\": \"<pad>\"}")),
            "padding token '<pad>' is not in vocab.json");
        Refused(Copy(f => File.WriteAllText(Path.Combine(f, "tokenizer_config.json"), "{\"model_max_length\": 2}")),
            "model_max_length");
        Refused(Path.Combine(good, "missing"), "does not exist");
    }
}
