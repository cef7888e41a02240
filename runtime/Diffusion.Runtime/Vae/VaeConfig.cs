using System.Text.Json.Nodes;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Vae;

/// <summary>
/// An AutoencoderKL's config.json (diffusers' keys): how latents are scaled for the UNet and how many pixels a latent
/// covers.
/// </summary>
public sealed record VaeConfig
{
    /// <summary>
    /// z_UNet = scaling_factor · z_VAE (0.18215 for SD 1.x and 2.x): the pipeline decodes latents / scaling_factor.
    /// </summary>
    public double ScalingFactor { get; init; } = 0.18215;
    /// <summary>Latent channels (4 for SD).</summary>
    public int LatentChannels { get; init; } = 4;
    /// <summary>Image channels (3).</summary>
    public int OutChannels { get; init; } = 3;
    /// <summary>Pixels per latent along each side: 2^(len(block_out_channels) − 1), 8 for SD.</summary>
    public int DownsamplingFactor { get; init; } = 8;
    /// <summary>Where it came from.</summary>
    public string Source { get; init; } = "defaults";

    /// <summary>Reads <paramref name="path"/> if it exists (else SD's defaults).</summary>
    public static VaeConfig Read(string path)
    {
        if (!File.Exists(path)) return new();
        var json = PythonJson.ReadObject(path);
        var config = new VaeConfig { Source = path };
        if (json["scaling_factor"] is JsonNode s)
        {
            PythonJson.ThrowIfNonFinite(s, "scaling_factor", $"'{path}'");
            config = config with
            {
                ScalingFactor = s is JsonValue v && v.TryGetValue<double>(out var f) && f > 0 && double.IsFinite(f) ? f
                    : throw new DiffusionException($"'{path}': scaling_factor must be a positive number."),
            };
        }
        int Positive(string key, int fallback, int max) => json[key] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue<int>(out var n) && n > 0 && n <= max => n,
            _ => throw new DiffusionException($"'{path}': '{key}' must be a whole number in 1…{max}."),
        };
        config = config with
        {
            LatentChannels = Positive("latent_channels", config.LatentChannels, 64),
            OutChannels = Positive("out_channels", config.OutChannels, 4),
        };
        if (json["block_out_channels"] is JsonArray blocks)
        {
            if (blocks.Count is < 1 or > 8)
                throw new DiffusionException($"'{path}': block_out_channels must list 1…8 widths.");
            config = config with { DownsamplingFactor = 1 << (blocks.Count - 1) };
        }
        return config;
    }
}
