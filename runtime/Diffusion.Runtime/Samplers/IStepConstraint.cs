using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Samplers;

/// <summary>
/// How a sampler holds x between steps: the model's VP space (x = αx₀ + σε) or Karras' σ-space (x̃ = x/α).
/// </summary>
public enum SampleSpace
{
    /// <summary>x = αx₀ + σ_vp ε.</summary>
    Vp,
    /// <summary>x̃ = x₀ + σ ε.</summary>
    Sigma,
}

/// <summary>
/// Something imposed on the batch after every grid step, e.g. inpainting's known pixels. Samplers that walk the grid
/// call it with x at the level just reached; adaptive solvers (rk45) cannot honour one and refuse it.
/// </summary>
public interface IStepConstraint
{
    /// <summary>
    /// Adjusts <paramref name="x"/>, which now sits at <paramref name="level"/> in <paramref name="space"/>.
    /// </summary>
    void Apply(SamplingContext context, Span<float> x, NoiseLevel level, SampleSpace space);
}
