using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Text;

/// <summary>
/// A CLIP tokenizer's settings, from its folder's tokenizer_config.json and special_tokens_map.json (a token is a
/// string or an AddedToken object's <c>content</c>; the map wins where both name one); transformers' CLIPTokenizer
/// defaults where neither does.
/// </summary>
public sealed record TokenizerConfig
{
    /// <summary>The most tokens the text encoder reads, BOS and EOS included (77 for CLIP).</summary>
    public int ModelMaxLength { get; init; } = 77;
    /// <summary>The beginning-of-sequence token.</summary>
    public string BosToken { get; init; } = "<|startoftext|>";
    /// <summary>The end-of-sequence token.</summary>
    public string EosToken { get; init; } = "<|endoftext|>";
    /// <summary>The token a word outside the vocabulary becomes.</summary>
    public string UnkToken { get; init; } = "<|endoftext|>";
    /// <summary>The padding token: <c>&lt;|endoftext|&gt;</c> in SD 1.x, <c>!</c> in SD 2.x.</summary>
    public string PadToken { get; init; } = "<|endoftext|>";
    /// <summary>Where the settings came from, for messages.</summary>
    public string Source { get; init; } = "defaults";

    /// <summary>The most tokens a text encoder may be asked to read.</summary>
    public const int MaxModelLength = 4096;

    /// <summary>Reads <paramref name="folder"/>'s files (either may be missing: the defaults stand).</summary>
    public static TokenizerConfig Read(string folder)
    {
        var config = new TokenizerConfig();
        var sources = new List<string>();
        foreach (var name in new[] { "tokenizer_config.json", "special_tokens_map.json" })
        {
            var path = Path.Combine(folder, name);
            if (!File.Exists(path)) continue;
            sources.Add(path);
            var json = PythonJson.ReadObject(path);
            string? Token(string key) => json[key] switch
            {
                null => null,
                JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
                JsonValue v when v.TryGetValue<string>(out var s) && s.Length > 0 => s,
                JsonObject o when o["content"] is JsonValue c && c.TryGetValue<string>(out var s) && s.Length > 0 => s,
                _ => throw new DiffusionException($"'{path}': '{key}' must be a token (a string, or an object with a " +
                    "content string)."),
            };
            config = config with
            {
                BosToken = Token("bos_token") ?? config.BosToken,
                EosToken = Token("eos_token") ?? config.EosToken,
                UnkToken = Token("unk_token") ?? config.UnkToken,
                PadToken = Token("pad_token") ?? config.PadToken,
            };
            if (json["model_max_length"] is JsonNode length)
            {
                PythonJson.ThrowIfNonFinite(length, "model_max_length", $"'{path}'");
                // transformers writes 1e30 (VERY_LARGE_INTEGER) where a tokenizer has no limit of its own
                if (length is not JsonValue value || !value.TryGetValue<double>(out var n) || n < 3 || n != Math.Floor(n))
                    throw new DiffusionException($"'{path}': model_max_length must be a whole number ≥ 3 (BOS, a token, " +
                        "EOS).");
                if (n <= MaxModelLength) config = config with { ModelMaxLength = (int)n };
            }
        }
        return config with { Source = sources.Count == 0 ? "defaults" : string.Join(" + ", sources) };
    }

}
