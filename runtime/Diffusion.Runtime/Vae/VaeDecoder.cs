using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Vae;

/// <summary>
/// An AutoencoderKL's decoder exported to ONNX (<c>latent_sample</c> [B, C, h, w] → <c>sample</c> [B, 3, H, W]):
/// x = D(z / scaling_factor), one image per run so that memory stays that of one image whatever the request's count.
/// </summary>
public sealed class VaeDecoder : OnnxComponent
{
    private const string What = "VAE decoder";
    private readonly string _input, _output;

    /// <summary>Loads <paramref name="path"/> with <paramref name="config"/> (its folder's config.json by default).</summary>
    public VaeDecoder(string path, VaeConfig? config = null, SessionSettings? settings = null)
        : base(path, settings, What)
    {
        try
        {
            Config = config ?? VaeConfig.Read(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!,
                "config.json"));
            _input = Pick(Inputs, "latent_sample", What, path, "input");
            _output = Pick(Outputs, "sample", What, path, "output");
            var input = Inputs[_input];
            if (input.Dimensions.Length != 4 || (input.Dimensions[1] > 0 && input.Dimensions[1] != Config.LatentChannels))
                throw new DiffusionException($"{What} '{path}': input '{_input}' is {DiffusionModel.Describe(input)}; " +
                    $"expected [batch, {Config.LatentChannels}, height, width] ({Config.Source}).");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Its config.</summary>
    public VaeConfig Config { get; }

    /// <summary>
    /// Pixels [C, H, W] (data range about [−1, 1]) of one image's UNet-space latents [C, h, w]; refuses a non-finite
    /// result (a float16 decoder overflows on some latents).
    /// </summary>
    public float[] Decode(ReadOnlySpan<float> latents, ImageShape latentShape, CancellationToken cancellation = default)
    {
        var z = new float[latents.Length];
        System.Numerics.Tensors.TensorPrimitives.Multiply(latents, (float)(1 / Config.ScalingFactor), z);
        var pixels = Run([new Feed(_input, [1, latentShape.Channels, latentShape.Height, latentShape.Width], z)],
            _output, cancellation);
        int expected = Config.OutChannels * latentShape.Height * Config.DownsamplingFactor * latentShape.Width
            * Config.DownsamplingFactor;
        if (pixels.Length != expected)
            throw new DiffusionException($"{What} '{Source}' returned {pixels.Length} values for latents " +
                $"{latentShape}; {Config.OutChannels}×{latentShape.Height * Config.DownsamplingFactor}×" +
                    $"{latentShape.Width * Config.DownsamplingFactor} were expected (downsampling factor " +
                        $"{Config.DownsamplingFactor}, {Config.Source}).");
        int bad = pixels.AsSpan().IndexOfAnyExceptInRange(float.MinValue, float.MaxValue);
        if (bad >= 0)
            throw new DiffusionException($"{What} '{Source}' returned {pixels[bad]} from finite latents" +
                (Inputs[_input].ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16
                    ? ": a float16 VAE overflows on some latents; use a float32 VAE decoder (e.g. export it with " +
                        "--fp32 or take vae_decoder from a float32 export)." : "; check the model file.")
                + " Nothing was written.");
        return pixels;
    }
}
