using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.OnnxGraph;
using Diffusion.Runtime.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Diffusion.ReferenceModels;

/// <summary>What the closed-form Stable Diffusion-layout folder looks like.</summary>
public sealed record LatentGaussianSpec
{
    /// <summary>Latent channels (the text embedding's width is the same: μ per channel is a sequence mean).</summary>
    public int LatentChannels { get; init; } = 4;
    /// <summary>The UNet's sample size (latents per side; pixels = 8 × this).</summary>
    public int SampleSize { get; init; } = 8;
    /// <summary>The text encoder's hidden size; default: <see cref="LatentChannels"/> (a mismatch is a test case).</summary>
    public int? HiddenSize { get; init; }
    /// <summary>Per-latent-channel data standard deviation s.</summary>
    public float Std { get; init; } = 0.3f;
    /// <summary>Export every graph's float inputs and outputs as float16.</summary>
    public bool Float16 { get; init; }
    /// <summary>Scale the VAE decoder's weights (a huge value overflows float16: the NaN case).</summary>
    public float DecoderGain { get; init; } = 1;
    /// <summary>The padding token: <c>&lt;|endoftext|&gt;</c> (SD 1.x) or <c>!</c> (SD 2.x).</summary>
    public string PadToken { get; init; } = "<|endoftext|>";
    /// <summary>Write vae_encoder/ too (img2img).</summary>
    public bool WithEncoder { get; init; } = true;
}

/// <summary>
/// A Stable Diffusion-layout folder (model_index.json, tokenizer/, text_encoder/, unet/, vae_decoder/, vae_encoder/,
/// scheduler/) whose every component is closed-form, so that a latent text-to-image pipeline can be tested without a
/// trained model: the text encoder looks each token up in <see cref="Embedding"/>; the UNet is the exact denoiser of
/// latents ~ N(μ, s²) whose μ per channel is the mean of encoder_hidden_states over the sequence (ε* is linear in μ,
/// so guidance has a closed form too); the VAE decoder is a 1×1 convolution (<see cref="DecoderWeight"/>) of
/// z / scaling_factor upsampled ×8 by nearest neighbour, the encoder an 8×8 average pool then a 1×1 convolution
/// (<see cref="EncoderWeight"/>).
/// </summary>
public static class LatentGaussianFolder
{
    /// <summary>SD's latent scaling.</summary>
    public const float ScalingFactor = 0.18215f;

    /// <summary>Words with merges of their own (any other text falls back to byte symbols).</summary>
    public static readonly string[] Words = ["a", "photo", "of", "red", "green", "blue", "cat", "dog", "on", "the",
        "moon", "blurry", "ugly"];

    /// <summary>Token <paramref name="id"/>'s embedding value in channel <paramref name="channel"/>.</summary>
    public static float Embedding(int id, int channel) => 0.6f * MathF.Sin(0.37f * id * (channel + 1) + channel);

    /// <summary>The decoder's 1×1 weight from latent channel <paramref name="c"/> to pixel channel <paramref name="o"/>.</summary>
    public static float DecoderWeight(int o, int c) => 0.1f * ((o + 2 * c) % 5 - 2) + (o == c ? 0.15f : 0);

    /// <summary>The encoder's 1×1 weight from pixel channel <paramref name="o"/> to latent channel <paramref name="c"/>.</summary>
    public static float EncoderWeight(int c, int o) => 0.5f * ((c + o) % 3 - 1) + (c == o ? 0.5f : 0);

    /// <summary>Writes the folder; returns it.</summary>
    public static string Write(string folder, LatentGaussianSpec? spec = null)
    {
        spec ??= new LatentGaussianSpec();
        int channels = spec.LatentChannels, hidden = spec.HiddenSize ?? channels;
        Directory.CreateDirectory(folder);
        var vocab = WriteTokenizer(Path.Combine(folder, "tokenizer"), spec.PadToken);
        var floatType = spec.Float16 ? DataType.Float16 : DataType.Float;

        // text_encoder: Gather on the embedding table
        var g = new GraphBuilder("text_encoder");
        var ids = g.Input("input_ids", DataType.Int32, "batch", "sequence");
        var table = new float[vocab * hidden];
        for (int id = 0; id < vocab; id++)
            for (int c = 0; c < hidden; c++) table[id * hidden + c] = Embedding(id, c);
        Value states = g.Gather(g.Initializer("embeddings", table, vocab, hidden), g.Cast(ids, DataType.Int64));
        if (spec.Float16) states = g.Cast(states, DataType.Float16);
        g.Output(states, "last_hidden_state", floatType, "batch", "sequence", hidden);
        Save(Path.Combine(folder, "text_encoder"), new ModelBuilder(g).ToBytes(),
            new JsonObject { ["hidden_size"] = hidden, ["max_position_embeddings"] = 77 });

        // unet: the closed-form denoiser with μ from the text embedding, Optimum's names and int64 timesteps
        var unet = GaussianModel.Build(new GaussianModelSpec
        {
            Channels = channels, Height = spec.SampleSize, Width = spec.SampleSize,
            Mean = new float[channels], Std = Enumerable.Repeat(spec.Std, channels).ToArray(),
            MeanInput = "encoder_hidden_states", DynamicSize = true, Float16 = spec.Float16, Int64Timestep = true,
            OutputName = "out_sample", WithMetadata = false,
            Config = new DiffusionConfig { BetaSchedule = "scaled_linear", BetaStart = 0.00085, BetaEnd = 0.012 },
        });
        Save(Path.Combine(folder, "unet"), unet, new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel", ["sample_size"] = spec.SampleSize, ["in_channels"] = channels,
            ["out_channels"] = channels, ["cross_attention_dim"] = channels,
        });
        WriteJson(Path.Combine(folder, "scheduler", "scheduler_config.json"), new JsonObject
        {
            ["_class_name"] = "PNDMScheduler", ["beta_start"] = 0.00085, ["beta_end"] = 0.012,
            ["beta_schedule"] = "scaled_linear", ["num_train_timesteps"] = 1000, ["prediction_type"] = "epsilon",
            ["set_alpha_to_one"] = false, ["skip_prk_steps"] = true, ["steps_offset"] = 1,
            ["timestep_spacing"] = "leading",
        });

        var vaeConfig = new JsonObject
        {
            ["_class_name"] = "AutoencoderKL", ["latent_channels"] = channels, ["in_channels"] = 3, ["out_channels"] = 3,
            ["scaling_factor"] = ScalingFactor, ["block_out_channels"] = new JsonArray(8, 8, 8, 8),
        };
        // vae_decoder: 1×1 conv, then ×8 nearest upsampling
        g = new GraphBuilder("vae_decoder");
        var z = g.Input("latent_sample", floatType, "batch", channels, "latent_height", "latent_width");
        var decoder = new float[3 * channels];
        for (int o = 0; o < 3; o++)
            for (int c = 0; c < channels; c++) decoder[o * channels + c] = spec.DecoderGain * DecoderWeight(o, c);
        Value zf = spec.Float16 ? g.Cast(z, DataType.Float) : z;
        var conv = g.Node("Conv", [zf, g.Initializer("decoder_weight", decoder, 3, channels, 1, 1)]);
        Value image = g.Node("Resize", [conv, new Value(""), g.Constant([1f, 1f, 8f, 8f], 4)], null,
            Attr.String("mode", "nearest"), Attr.String("coordinate_transformation_mode", "asymmetric"),
            Attr.String("nearest_mode", "floor"));
        if (spec.Float16) image = g.Cast(image, DataType.Float16);
        g.Output(image, "sample", floatType, "batch", 3, "height", "width");
        Save(Path.Combine(folder, "vae_decoder"), new ModelBuilder(g).ToBytes(), vaeConfig);

        var components = new JsonObject
        {
            ["_class_name"] = "OnnxStableDiffusionPipeline", ["_diffusers_version"] = "0.31.0",
            ["scheduler"] = new JsonArray("diffusers", "PNDMScheduler"),
            ["text_encoder"] = new JsonArray("diffusers", "OnnxRuntimeModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["unet"] = new JsonArray("diffusers", "OnnxRuntimeModel"),
            ["vae_decoder"] = new JsonArray("diffusers", "OnnxRuntimeModel"),
            ["safety_checker"] = new JsonArray(null, null), ["feature_extractor"] = new JsonArray(null, null),
            ["requires_safety_checker"] = false,
        };
        if (spec.WithEncoder)
        {
            // vae_encoder: 8×8 average pool, then a 1×1 conv; the export returns the latent itself
            g = new GraphBuilder("vae_encoder");
            var x = g.Input("sample", floatType, "batch", 3, "height", "width");
            var encoder = new float[channels * 3];
            for (int c = 0; c < channels; c++)
                for (int o = 0; o < 3; o++) encoder[c * 3 + o] = EncoderWeight(c, o);
            Value xf = spec.Float16 ? g.Cast(x, DataType.Float) : x;
            var pooled = g.Node("AveragePool", [xf], null, Attr.Ints("kernel_shape", 8, 8), Attr.Ints("strides", 8, 8));
            Value latent = g.Node("Conv", [pooled, g.Initializer("encoder_weight", encoder, channels, 3, 1, 1)]);
            if (spec.Float16) latent = g.Cast(latent, DataType.Float16);
            g.Output(latent, "latent_sample", floatType, "batch", channels, "latent_height", "latent_width");
            Save(Path.Combine(folder, "vae_encoder"), new ModelBuilder(g).ToBytes(), vaeConfig);
            components["vae_encoder"] = new JsonArray("diffusers", "OnnxRuntimeModel");
        }
        WriteJson(Path.Combine(folder, "model_index.json"), components);
        return folder;
    }

    private static void Save(string folder, byte[] model, JsonObject config)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "model.onnx"), model);
        WriteJson(Path.Combine(folder, "config.json"), config);
    }

    private static void WriteJson(string path, JsonNode json)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// A byte-level BPE vocabulary in CLIP's layout: the 256 byte symbols, the same with &lt;/w&gt;, merges spelling each
    /// of <see cref="Words"/> left to right, then &lt;|startoftext|&gt; and &lt;|endoftext|&gt;. Returns its size.
    /// </summary>
    private static int WriteTokenizer(string folder, string pad)
    {
        Directory.CreateDirectory(folder);
        var symbols = Diffusion.Runtime.Text.ClipTokenizer.ByteSymbols;
        var vocab = new List<string>(symbols);
        vocab.AddRange(symbols.Select(s => s + "</w>"));
        var merges = new List<string>();
        foreach (var word in Words.Where(w => w.Length > 1))
        {
            string left = word[0].ToString();
            for (int i = 1; i < word.Length; i++)
            {
                string right = word[i] + (i == word.Length - 1 ? "</w>" : "");
                if (!merges.Contains($"{left} {right}")) merges.Add($"{left} {right}");
                left += right;
                if (!vocab.Contains(left)) vocab.Add(left);
            }
        }
        vocab.Add("<|startoftext|>");
        vocab.Add("<|endoftext|>");
        var json = new JsonObject();
        for (int i = 0; i < vocab.Count; i++) json[vocab[i]] = i;
        WriteJson(Path.Combine(folder, "vocab.json"), json);
        File.WriteAllText(Path.Combine(folder, "merges.txt"), "#version: 0.2\n" + string.Join("\n", merges) + "\n");
        WriteJson(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["model_max_length"] = 77, ["pad_token"] = pad, ["tokenizer_class"] = "CLIPTokenizer",
            ["bos_token"] = "<|startoftext|>", ["eos_token"] = "<|endoftext|>", ["unk_token"] = "<|endoftext|>",
        });
        return vocab.Count;
    }
}
