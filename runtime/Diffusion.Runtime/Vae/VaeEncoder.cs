using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Vae;

/// <summary>
/// An AutoencoderKL's encoder exported to ONNX (<c>sample</c> [B, 3, H, W] → <c>latent_sample</c>): UNet-space latents
/// z = scaling_factor · E(x). An output of C channels is taken as the export has it (Optimum's and diffusers' exports
/// return the latent); one of 2C channels holds the latent distribution's parameters (mean, log-variance), and the mean
/// is taken.
/// </summary>
public sealed class VaeEncoder : OnnxComponent
{
    private const string What = "VAE encoder";
    private readonly string _input, _output;

    /// <summary>Loads <paramref name="path"/> with <paramref name="config"/> (its folder's config.json by default).</summary>
    public VaeEncoder(string path, VaeConfig? config = null, SessionSettings? settings = null)
        : base(path, settings, What)
    {
        try
        {
            Config = config ?? VaeConfig.Read(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!,
                "config.json"));
            _input = Pick(Inputs, "sample", What, path, "input");
            _output = Pick(Outputs, "latent_sample", What, path, "output");
            if (Inputs[_input].Dimensions.Length != 4)
                throw new DiffusionException($"{What} '{path}': input '{_input}' is " +
                    $"{DiffusionModel.Describe(Inputs[_input])}; expected [batch, 3, height, width].");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Its config.</summary>
    public VaeConfig Config { get; }

    /// <summary>UNet-space latents [C, h, w] of one image's pixels [3, H, W] in [−1, 1].</summary>
    public float[] Encode(ReadOnlySpan<float> pixels, int height, int width, CancellationToken cancellation = default)
    {
        int f = Config.DownsamplingFactor, c = Config.LatentChannels;
        var output = Run([new Feed(_input, [1, pixels.Length / (height * width), height, width], pixels.ToArray())],
            _output, cancellation);
        int latent = c * (height / f) * (width / f);
        if (output.Length != latent && output.Length != 2 * latent)
            throw new DiffusionException($"{What} '{Source}' returned {output.Length} values for a {height}×{width} " +
                $"image; {c}×{height / f}×{width / f} (or twice that: mean and log-variance) were expected.");
        var z = output.AsSpan(0, latent).ToArray(); // the latent, or the distribution's mean
        System.Numerics.Tensors.TensorPrimitives.Multiply(z, (float)Config.ScalingFactor, z);
        return z;
    }
}
