using System.Text.Json;
using Diffusion.Runtime.Imaging;
using Microsoft.ML.Tokenizers;

namespace Diffusion.Runtime.Text;

/// <summary>
/// A prompt as the text encoder reads it: <see cref="Ids"/> padded to the model's length (BOS, the tokens, EOS, then
/// the pad token), how many of them are real, the tokens themselves, and what truncation cut off.
/// </summary>
public sealed record TokenizedPrompt(int[] Ids, int Length, IReadOnlyList<string> Tokens, string? Truncated);

/// <summary>
/// CLIP's tokenizer, as transformers' CLIPTokenizer encodes: the special tokens (BOS, EOS, UNK, pad) split out first,
/// the text between them cleaned and pre-tokenized by <see cref="ClipText"/>, each piece encoded by byte-level BPE with
/// <c>&lt;/w&gt;</c> ending the word (Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>), then BOS … EOS, truncated to
/// and padded to <see cref="TokenizerConfig.ModelMaxLength"/>. Thread-safe once loaded.
/// </summary>
public sealed class ClipTokenizer
{
    /// <summary>The most bytes vocab.json or merges.txt may hold (CLIP's are 1.6 MB and 0.5 MB).</summary>
    public const long MaxFileBytes = 64L << 20;

    /// <summary>The merges CLIPTokenizer reads at most (49152 − 256 − 2; later lines are ignored, as there).</summary>
    public const int MaxMerges = 49152 - 256 - 2;

    private const string EndOfWord = "</w>";
    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _byId;
    private readonly string[] _special; // no-split tokens, longest first

    private ClipTokenizer(string source, TokenizerConfig config, Dictionary<string, int> vocab, BpeTokenizer bpe)
    {
        Source = source;
        Config = config;
        _vocab = vocab;
        _byId = vocab.GroupBy(kv => kv.Value).ToDictionary(g => g.Key, g => g.First().Key);
        _bpe = bpe;
        int Id(string token, string role) => vocab.TryGetValue(token, out var id) ? id
            : throw new DiffusionException($"Tokenizer '{source}': its {role} token '{Printable.Of(token, 40)}' is not " +
                "in vocab.json.");
        BosId = Id(config.BosToken, "beginning-of-sequence");
        EosId = Id(config.EosToken, "end-of-sequence");
        UnkId = Id(config.UnkToken, "unknown");
        PadId = Id(config.PadToken, "padding");
        _special = [.. new[] { config.BosToken, config.EosToken, config.UnkToken, config.PadToken }.Distinct()
            .OrderByDescending(t => t.Length)];
    }

    /// <summary>Where the tokenizer came from.</summary>
    public string Source { get; }
    /// <summary>Its settings.</summary>
    public TokenizerConfig Config { get; }
    /// <summary>Id of the beginning-of-sequence token.</summary>
    public int BosId { get; }
    /// <summary>Id of the end-of-sequence token.</summary>
    public int EosId { get; }
    /// <summary>Id of the unknown token.</summary>
    public int UnkId { get; }
    /// <summary>Id of the padding token.</summary>
    public int PadId { get; }
    /// <summary>Tokens in the vocabulary.</summary>
    public int VocabularySize => _vocab.Count;

    /// <summary>
    /// Loads a tokenizer folder: vocab.json and merges.txt, with tokenizer_config.json and special_tokens_map.json where
    /// present.
    /// </summary>
    public static ClipTokenizer Load(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) throw new DiffusionException($"Tokenizer folder '{folder}' does not exist.");
        string File(string name) => System.IO.File.Exists(Path.Combine(folder, name)) ? Path.Combine(folder, name)
            : throw new DiffusionException($"Tokenizer folder '{folder}' has no {name}; a CLIP tokenizer needs " +
                "vocab.json and merges.txt.");
        var vocabPath = File("vocab.json");
        var mergesPath = File("merges.txt");
        var vocab = ReadVocabulary(vocabPath);
        var merges = ReadMerges(mergesPath);
        var config = TokenizerConfig.Read(folder);
        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges, ByteLevel = true, EndOfWordSuffix = EndOfWord,
                UnknownToken = vocab.ContainsKey(config.UnkToken) ? config.UnkToken : null,
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException
            or KeyNotFoundException)
        {
            throw new DiffusionException($"Tokenizer folder '{folder}': Microsoft.ML.Tokenizers refused its vocabulary " +
                $"and merges ({e.Message.Trim()}).", e);
        }
        return new ClipTokenizer(folder, config, vocab, bpe);
    }

    private static Dictionary<string, int> ReadVocabulary(string path)
    {
        var text = InputFile.ReadAllText(path, MaxFileBytes, $"'{path}'");
        Dictionary<string, int>? vocab;
        try { vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(text); }
        catch (JsonException e)
        {
            throw new DiffusionException($"'{path}': expected a JSON object of token → id ({e.Message}).", e);
        }
        if (vocab is null || vocab.Count == 0)
            throw new DiffusionException($"'{path}': expected a JSON object of token → id; it holds none.");
        var seen = new HashSet<int>();
        foreach (var (token, id) in vocab)
        {
            if (id < 0 || !seen.Add(id))
                throw new DiffusionException($"'{path}': token '{Printable.Of(token, 40)}' has id {id}; ids must be " +
                    "distinct and non-negative.");
            if (token.Length == 0) throw new DiffusionException($"'{path}': an empty token (id {id}).");
        }
        return vocab;
    }

    /// <summary>
    /// The merges, as CLIPTokenizer reads them: the first line (the "#version" header) skipped, at most
    /// <see cref="MaxMerges"/>, two symbols per line.
    /// </summary>
    private static List<string> ReadMerges(string path)
    {
        var lines = InputFile.ReadAllText(path, MaxFileBytes, $"'{path}'").Trim().Split('\n');
        var merges = new List<string>();
        for (int i = 1; i < lines.Length && merges.Count < MaxMerges; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.Length == 0) continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
                throw new DiffusionException($"'{path}' line {i + 1}: expected two symbols separated by a space, " +
                    $"got '{Printable.Of(line, 60)}'.");
            merges.Add(parts[0] + " " + parts[1]);
        }
        if (merges.Count == 0)
            throw new DiffusionException($"'{path}' holds no merges (after its first line, the version header).");
        return merges;
    }

    /// <summary>The tokens of <paramref name="text"/>, without BOS and EOS and untruncated.</summary>
    public IReadOnlyList<string> Tokenize(string text) => [.. TokenIds(text).Select(t => t.Token)];

    private List<(string Token, int Id)> TokenIds(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var result = new List<(string, int)>();
        foreach (var (piece, special) in SplitOnSpecial(text))
        {
            if (special) { result.Add((piece, _vocab[piece])); continue; }
            foreach (var word in ClipText.PreTokenize(ClipText.Clean(piece)))
            {
                // CLIPTokenizer's BPE cache holds these two as they are, so a typed one (any case) is that token.
                if (word is "<|startoftext|>" or "<|endoftext|>")
                {
                    result.Add((word, _vocab.TryGetValue(word, out var id) ? id : UnkId));
                    continue;
                }
                foreach (var token in _bpe.EncodeToTokens(word, out _, considerPreTokenization: false,
                    considerNormalization: false))
                    result.Add((token.Value, token.Id));
            }
        }
        return result;
    }

    private IEnumerable<(string Piece, bool Special)> SplitOnSpecial(string text)
    {
        int start = 0, i = 0;
        while (i < text.Length)
        {
            var match = _special.FirstOrDefault(t => string.CompareOrdinal(text, i, t, 0, t.Length) == 0);
            if (match is null) { i++; continue; }
            if (i > start) yield return (text[start..i], false);
            yield return (match, true);
            i += match.Length;
            start = i;
        }
        if (start < text.Length) yield return (text[start..], false);
    }

    /// <summary>
    /// <paramref name="prompt"/> as the text encoder reads it: BOS, its first ModelMaxLength − 2 tokens, EOS, padding.
    /// </summary>
    public TokenizedPrompt Encode(string prompt)
    {
        var tokens = TokenIds(prompt);
        int keep = Math.Min(tokens.Count, Config.ModelMaxLength - 2);
        var ids = new int[Config.ModelMaxLength];
        ids[0] = BosId;
        for (int i = 0; i < keep; i++) ids[i + 1] = tokens[i].Id;
        ids[keep + 1] = EosId;
        ids.AsSpan(keep + 2).Fill(PadId);
        string? truncated = keep < tokens.Count ? Decode(tokens.Skip(keep).Select(t => t.Id)) : null;
        return new TokenizedPrompt(ids, keep + 2, [.. tokens.Take(keep).Select(t => t.Token)], truncated);
    }

    /// <summary>
    /// The text of token ids: each token's byte symbols back to bytes, decoded as UTF-8 (invalid sequences as U+FFFD),
    /// word ends as spaces, special tokens left out.
    /// </summary>
    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (Token(id) is not { } token || id == BosId || id == EosId || id == PadId) continue;
            bool endOfWord = token.EndsWith(EndOfWord, StringComparison.Ordinal);
            foreach (var ch in endOfWord ? token[..^EndOfWord.Length] : token)
                if (ByteOf.TryGetValue(ch, out var b)) bytes.Add(b);
            if (endOfWord) bytes.Add((byte)' ');
        }
        return System.Text.Encoding.UTF8.GetString([.. bytes]).Trim();
    }

    /// <summary>
    /// GPT-2's byte-to-symbol table (CLIP's bytes_to_unicode): printable Latin-1 bytes are their own symbols, the other
    /// 68 bytes the code points from U+0100 on, in byte order. Index = byte.
    /// </summary>
    private static readonly char[] SymbolOf = BuildSymbols();

    private static readonly Dictionary<char, byte> ByteOf =
        Enumerable.Range(0, 256).ToDictionary(b => SymbolOf[b], b => (byte)b);

    private static bool IsPrintableByte(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static char[] BuildSymbols()
    {
        var symbols = new char[256];
        int next = 0x100;
        for (int b = 0; b < 256; b++) symbols[b] = (char)(IsPrintableByte(b) ? b : next++);
        return symbols;
    }

    /// <summary>
    /// The 256 byte symbols in the order CLIP's vocabulary lists them (printable bytes first, then the others): the
    /// first 256 entries of vocab.json, and with &lt;/w&gt; the next 256.
    /// </summary>
    public static IReadOnlyList<string> ByteSymbols { get; } =
        [.. Enumerable.Range(0, 256).OrderBy(b => IsPrintableByte(b) ? 0 : 1).Select(b => SymbolOf[b].ToString())];

    /// <summary>The token of an id, or null.</summary>
    public string? Token(int id) => _byId.GetValueOrDefault(id);
}
