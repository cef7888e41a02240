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

/// <summary>Names of the prediction types.</summary>
public static class PredictionTypes
{
    /// <summary>Parses epsilon, v_prediction or sample.</summary>
    public static PredictionType Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "epsilon" => PredictionType.Epsilon,
        "v_prediction" or "v" => PredictionType.VPrediction,
        "sample" => PredictionType.Sample,
        _ => throw new ArgumentException($"prediction_type '{name}' is not known; expected epsilon, v_prediction or sample."),
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
