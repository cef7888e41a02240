using System.Text.Json.Nodes;
using Diffusion.Runtime.Onnx;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Diffusion.Runtime.Text;

/// <summary>What a text encoder's config.json says (transformers' CLIPTextConfig keys); null where it says nothing.</summary>
public sealed record TextEncoderConfig
{
    /// <summary>The width of each token's embedding (cross-attention's key/value width in the UNet).</summary>
    public int? HiddenSize { get; init; }
    /// <summary>The most tokens its position embedding holds.</summary>
    public int? MaxPositionEmbeddings { get; init; }
    /// <summary>Where it came from.</summary>
    public string Source { get; init; } = "none";

    /// <summary>Reads <paramref name="path"/> if it exists.</summary>
    public static TextEncoderConfig Read(string path)
    {
        if (!File.Exists(path)) return new();
        var json = PythonJson.ReadObject(path);
        int? Positive(string key) => json[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<int>(out var n) && n > 0 => n,
            _ => throw new DiffusionException($"'{path}': '{key}' must be a positive whole number."),
        };
        return new() { HiddenSize = Positive("hidden_size"), MaxPositionEmbeddings = Positive("max_position_embeddings"),
            Source = path };
    }
}

/// <summary>
/// A CLIP text encoder exported to ONNX (Optimum's layout: <c>input_ids</c> int32 or int64 [B, sequence] →
/// <c>last_hidden_state</c> [B, sequence, hidden]): token ids in, one embedding per token out — run once per request.
/// </summary>
public sealed class TextEncoder : OnnxComponent
{
    private const string What = "Text encoder";
    private readonly string _input, _output;

    /// <summary>Loads <paramref name="path"/> (config.json beside it is read where present).</summary>
    public TextEncoder(string path, SessionSettings? settings = null) : base(path, settings, What)
    {
        try
        {
            Config = TextEncoderConfig.Read(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "config.json"));
            _input = Pick(Inputs, "input_ids", What, path, "input");
            _output = Pick(Outputs, "last_hidden_state", What, path, "output");
            var input = Inputs[_input];
            var output = Outputs[_output];
            if (input.ElementDataType is not (TensorElementType.Int32 or TensorElementType.Int64)
                || input.Dimensions.Length != 2)
                throw new DiffusionException($"{What} '{path}': input '{_input}' is {DiffusionModel.Describe(input)}; " +
                    "expected int32 or int64 token ids [batch, sequence].");
            if (output.Dimensions.Length != 3)
                throw new DiffusionException($"{What} '{path}': output '{_output}' is " +
                    $"{DiffusionModel.Describe(output)}; expected [batch, sequence, hidden].");
            int graphHidden = output.Dimensions[2];
            if (graphHidden > 0 && Config.HiddenSize is int h && h != graphHidden)
                throw new DiffusionException($"{What} '{path}': {Config.Source} says hidden_size {h}, but its output " +
                    $"'{_output}' is {DiffusionModel.Describe(output)}.");
            HiddenSize = graphHidden > 0 ? graphHidden : Config.HiddenSize ?? throw new DiffusionException(
                $"{What} '{path}': the width of its output '{_output}' is open and no config.json gives hidden_size.");
            SequenceLength = input.Dimensions[1] > 0 ? input.Dimensions[1] : null;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Its config.json.</summary>
    public TextEncoderConfig Config { get; }
    /// <summary>The width of each token's embedding.</summary>
    public int HiddenSize { get; }
    /// <summary>The sequence length the graph fixes, or null where it is open.</summary>
    public int? SequenceLength { get; }

    /// <summary>
    /// The embeddings [N, sequence, hidden] of <paramref name="prompts"/> (token ids of one length each), in one run.
    /// </summary>
    public float[] Encode(IReadOnlyList<int[]> prompts, CancellationToken cancellation = default)
    {
        if (prompts.Count == 0) throw new ArgumentException("no prompts", nameof(prompts));
        int length = prompts[0].Length;
        if (prompts.Any(p => p.Length != length)) throw new ArgumentException("prompts differ in length", nameof(prompts));
        var ids = prompts.SelectMany(p => p.Select(v => (long)v)).ToArray();
        return Run([new Feed(_input, [prompts.Count, length], Integers: ids)], _output, cancellation);
    }
}
