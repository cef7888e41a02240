namespace Diffusion.Runtime.Samplers;

/// <summary>
/// A sampler: one readable unit that walks <see cref="SamplingContext.Grid"/> from x_T (in <see cref="SamplingContext.X"/>,
/// VP space) down to the clean level and leaves x₀ in the same buffer. Every sampler has this one shape.
/// </summary>
public interface ISampler
{
    /// <summary>The name used on the command line.</summary>
    string Name { get; }

    /// <summary>Runs the reverse process in place on <paramref name="c"/>.X.</summary>
    void Sample(SamplingContext c);
}
