using System.Text.Json.Nodes;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Pipelines;

/// <summary>
/// A diffusers / Optimum folder's model_index.json: the pipeline class it was saved from and its components, each a
/// subfolder named as the key (<c>"unet": ["diffusers", "UNet2DConditionModel"]</c>); a null entry is an absent
/// component (no safety checker, say).
/// </summary>
public sealed record ModelIndex(string Folder, string ClassName, IReadOnlyDictionary<string, string> Components)
{
    /// <summary>The file's name.</summary>
    public const string FileName = "model_index.json";

    /// <summary>Whether <paramref name="folder"/> has a model_index.json.</summary>
    public static bool IsIn(string folder) => File.Exists(Path.Combine(folder, FileName));

    /// <summary>Reads <paramref name="folder"/>'s model_index.json.</summary>
    public static ModelIndex Read(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
            throw new DiffusionException($"Model folder '{folder}' has no {FileName}.");
        var json = PythonJson.ReadObject(path);
        var name = json["_class_name"] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new DiffusionException($"'{path}': '_class_name' must name the pipeline (a string).");
        var components = new Dictionary<string, string>();
        foreach (var (key, value) in json)
        {
            if (key.StartsWith('_')) continue;
            if (value is JsonArray { Count: 2 } pair && pair[1] is JsonValue c && c.TryGetValue<string>(out var type))
                components[key] = type;
            // other entries: settings (requires_safety_checker) or absent components ([null, null])
        }
        return new ModelIndex(folder, name, components);
    }

    /// <summary>
    /// The subfolder of component <paramref name="name"/>, which must be listed and present; one line naming what is
    /// missing otherwise.
    /// </summary>
    public string Require(string name, string file)
    {
        if (!Components.ContainsKey(name))
            throw new DiffusionException($"Model folder '{Folder}': {FileName} ({ClassName}) lists no '{name}' " +
                $"component, which a text-to-image pipeline needs (its components: {string.Join(", ", Components.Keys)}).");
        var path = Path.Combine(Folder, name, file);
        if (!File.Exists(path))
            throw new DiffusionException($"Model folder '{Folder}': {FileName} lists '{name}', but {Path.Combine(name, file)} " +
                "does not exist.");
        return path;
    }
}
