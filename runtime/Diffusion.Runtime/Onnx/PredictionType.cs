namespace Diffusion.Runtime.Onnx;

/// <summary>What the network's <c>model_output</c> means.</summary>
public enum PredictionType
{
    /// <summary>The noise ε (Ho et al. 2020).</summary>
    Epsilon,
    /// <summary>v = α·ε − σ·x₀ (Salimans &amp; Ho 2022).</summary>
    VPrediction,
    /// <summary>The clean sample x₀.</summary>
    Sample,
}

/// <summary>Names of the prediction types, and the one home of the v-parameterisation's coefficients.</summary>
public static class PredictionTypes
{
    /// <summary>
    /// The velocity v = α ε − σ x₀ (Salimans &amp; Ho 2022) at a level with α = √ᾱ, σ = √(1 − ᾱ), as its weights on
    /// (ε, x₀): what a v-prediction network is trained to output.
    /// </summary>
    public static (double OnNoise, double OnSample) Velocity(double alpha, double sigma) => (alpha, -sigma);

    /// <summary>Back from a predicted v̂: x̂₀ = α x − σ v̂ and ε̂ = σ x + α v̂, as weights on (x, v̂).</summary>
    public static ((double OnX, double OnV) Sample, (double OnX, double OnV) Noise) FromVelocity(double alpha,
        double sigma) =>
        ((alpha, -sigma), (sigma, alpha));

    /// <summary>Parses epsilon, v_prediction or sample.</summary>
    public static PredictionType Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "epsilon" => PredictionType.Epsilon,
        "v_prediction" or "v" => PredictionType.VPrediction,
        "sample" => PredictionType.Sample,
        _ => throw new ArgumentException($"prediction_type '{Imaging.Printable.Of(name, 60)}' is not known; expected " +
            $"epsilon, v_prediction or sample."),
    };

    /// <summary>The config name.</summary>
    public static string Name(PredictionType type) => type switch
    {
        PredictionType.Epsilon => "epsilon",
        PredictionType.VPrediction => "v_prediction",
        PredictionType.Sample => "sample",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };
}
