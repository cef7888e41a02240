using Diffusion.Runtime.Imaging;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Diffusion.Runtime.Onnx;

/// <summary>
/// A diffusers / Optimum export folder: <c>unet/model.onnx</c> (or <c>model.onnx</c>),
/// <c>scheduler/scheduler_config.json</c> (or <c>scheduler_config.json</c>), and <c>unet/config.json</c>, whose
/// <c>sample_size</c>, <c>in_channels</c> and <c>num_class_embeds</c> complete the scheduler config (the UNet's image
/// shape and its classes, which have no null label).
/// </summary>
public static class DiffusersFolder
{
    /// <summary>
    /// The model file and the merged config (JSON, where it came from) of <paramref name="folder"/>; the config is null
    /// if the folder has none.
    /// </summary>
    public static (string Model, string? ConfigJson, string ConfigSource) Find(string folder)
    {
        var model = new[]
        {
            Path.Combine(folder, "unet", "model.onnx"), Path.Combine(folder, "model.onnx"),
        }.FirstOrDefault(File.Exists)
            ?? throw new DiffusionException($"Model folder '{folder}' has neither unet/model.onnx (an Optimum / " +
                $"diffusers export) nor model.onnx.");
        var scheduler = new[]
        {
            Path.Combine(folder, "scheduler", "scheduler_config.json"),
            Path.Combine(folder, "scheduler_config.json"),
        }.FirstOrDefault(File.Exists);
        var unet = Path.Combine(folder, "unet", "config.json");
        if (scheduler is null && !File.Exists(unet)) return (model, null, "");
        var merged = scheduler is null ? new JsonObject() : PythonJson.ReadObject(scheduler);
        var sources = new List<string>();
        if (scheduler is not null) sources.Add(scheduler);
        if (File.Exists(unet))
        {
            var u = PythonJson.ReadObject(unet);
            foreach (var (from, to) in new[]
            {
                ("sample_size", "sample_size"), ("in_channels", "in_channels"), ("num_class_embeds", "num_classes"),
            })
                if (u[from] is { } value && value.GetValueKind() != JsonValueKind.Null && !merged.ContainsKey(to))
                    merged[to] = value.DeepClone();
            // diffusers' class embedding has num_class_embeds rows: no null label to sample unconditionally or guide
            // with.
            if (u["num_class_embeds"] is JsonValue { } embeds && embeds.GetValueKind() == JsonValueKind.Number
                && !merged.ContainsKey("null_class"))
                merged["null_class"] = false;
            sources.Add(unet);
        }
        return (model, merged.ToJsonString(), string.Join(" + ", sources));
    }

}

/// <summary>
/// JSON as Python's json module writes it: bare <c>NaN</c>, <c>Infinity</c> and <c>-Infinity</c> (diffusers'
/// save_config writes e.g. <c>"lambda_min_clipped": -Infinity</c>). Outside strings they become marked strings that
/// <see cref="TryNonFinite"/> recognises, so that a reader can refuse a non-finite value by name where a number must be
/// finite (nearly everywhere) rather than take the key's default without a word.
/// </summary>
public static class PythonJson
{
    /// <summary>What a literal becomes: a string no JSON writer emits (it starts with a NUL).</summary>
    private const string Marker = "\0python:";

    /// <summary><paramref name="json"/> with Python's non-finite literals outside strings marked.</summary>
    public static string Normalize(string json)
    {
        var result = new StringBuilder(json.Length);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                result.Append(c);
                if (c == '\\' && i + 1 < json.Length) result.Append(json[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; result.Append(c); continue; }
            var token = new[]
            {
                "-Infinity", "Infinity", "NaN",
            }.FirstOrDefault(t =>
                    string.CompareOrdinal(json, i, t, 0, t.Length) == 0);
            if (token is not null)
            {
                result.Append(JsonSerializer.Serialize(Marker + token)); // the NUL written as \u0000
                i += token.Length - 1;
                continue;
            }
            result.Append(c);
        }
        return result.ToString();
    }

    /// <summary>Whether <paramref name="node"/> is a literal <see cref="Normalize"/> marked, and its value.</summary>
    public static bool TryNonFinite(JsonNode? node, out double value, out string literal)
    {
        value = 0;
        literal = "";
        if (node is not JsonValue v || !v.TryGetValue<string>(out var text)
            || !text.StartsWith(Marker, StringComparison.Ordinal))
            return false;
        literal = text[Marker.Length..];
        value = literal switch
        {
            "NaN" => double.NaN, "Infinity" => double.PositiveInfinity, _ => double.NegativeInfinity,
        };
        return true;
    }

    /// <summary>
    /// A config file's JSON object (at most <see cref="InputFile.MaxConfigBytes"/>), Python's literals marked; one line
    /// naming the file when it is not an object.
    /// </summary>
    public static JsonObject ReadObject(string path)
    {
        var text = InputFile.ReadAllText(path, InputFile.MaxConfigBytes, $"'{path}'");
        try
        {
            return JsonNode.Parse(Normalize(text)) as JsonObject
                ?? throw new DiffusionException($"'{path}': expected a JSON object.");
        }
        catch (JsonException e) { throw new DiffusionException($"'{path}': not valid JSON ({e.Message}).", e); }
    }

    /// <summary>
    /// Refuses a marked literal under <paramref name="key"/> of <paramref name="source"/>: a number there must be
    /// finite.
    /// </summary>
    public static void ThrowIfNonFinite(JsonNode? node, string key, string source)
    {
        if (TryNonFinite(node, out _, out var literal))
            throw new DiffusionException($"{source}: '{key}' is {literal}; expected a finite number.");
    }
}
