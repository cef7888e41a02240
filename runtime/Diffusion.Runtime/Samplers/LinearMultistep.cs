namespace Diffusion.Runtime.Samplers;

/// <summary>
/// The linear multistep method on the probability-flow ODE in σ space (Karras et al. 2022's dx̃/dσ = (x̃ − D)/σ;
/// k-diffusion's sample_lms, diffusers' LMSDiscreteScheduler): x̃′ = x̃ + Σ_k c_k d_{i−k}, with d = (x̃ − D)/σ at the
/// last <see cref="Order"/> levels and c_k = ∫_{σ_i}^{σ_{i+1}} ℓ_k(σ) dσ, ℓ_k the Lagrange basis polynomial through
/// those levels' σ (integrated exactly; the order grows from 1 as history accumulates, and is kept to the end).
/// </summary>
public sealed class LinearMultistep : ISampler
{
    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("lms",
        "Linear multistep (4th order, Lagrange coefficients in σ) on the probability-flow ODE — " +
            "k-diffusion / Karras et al. 2022")
    {
        Aliases = ["sample_lms", "LMS", "LMSDiscreteScheduler", "k_lms"],
        IsMultistep = true,
        Create = _ => new LinearMultistep(),
    };

    SamplerInfo ISampler.Info => Info;

    /// <summary>Number of past derivatives combined (1 … 4; 4 as k-diffusion and diffusers).</summary>
    public int Order { get; init; } = 4;

    /// <inheritdoc />
    public void Validate()
    {
        if (Order is < 1 or > 4)
            throw new DiffusionArgumentException(nameof(Order), $"expected an order in 1…4, got {Order}.");
    }

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        Validate();
        float[] x = c.X, denoised = c.Buffer(0);
        var history = new float[Order][]; // derivatives, newest at (i mod Order)
        for (int k = 0; k < Order; k++) history[k] = c.Buffer(1 + k);
        Span<double> sigmas = stackalloc double[4];
        Span<double> coefficients = stackalloc double[4];
        Vec.Scale(x, 1 / c.Grid[0].Alpha, x);
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            c.Model.Denoise(x, now, denoised);
            var d = history[i % Order];
            Vec.Axpby(d, 1 / now.Sigma, x, -1 / now.Sigma, denoised); // (x̃ − D)/σ
            int order = Math.Min(i + 1, Order);
            for (int k = 0; k < order; k++) sigmas[k] = c.Grid[i - k].Sigma;
            Coefficients(sigmas[..order], next.Sigma, coefficients[..order]);
            for (int k = 0; k < order; k++) Vec.AddScaled(x, coefficients[k], history[(i - k) % Order]);
            c.StepDone(i, x, SampleSpace.Sigma);
        }
    }

    /// <summary>
    /// c_k = ∫_{σ₀}^{<paramref name="to"/>} Π_{j≠k} (s − σ_j)/(σ_k − σ_j) ds for the levels <paramref name="sigmas"/>
    /// (σ₀ the current one), by expanding each basis polynomial in u = s − σ₀ and integrating term by term.
    /// </summary>
    public static void Coefficients(ReadOnlySpan<double> sigmas, double to, Span<double> coefficients)
    {
        int n = sigmas.Length;
        double h = to - sigmas[0];
        Span<double> poly = stackalloc double[4];
        for (int k = 0; k < n; k++)
        {
            poly.Clear();
            poly[0] = 1;
            int degree = 0;
            double denominator = 1;
            for (int j = 0; j < n; j++)
            {
                if (j == k) continue;
                // Multiply by (u + σ₀ − σ_j).
                double shift = sigmas[0] - sigmas[j];
                for (int m = degree + 1; m >= 1; m--) poly[m] = poly[m - 1] + shift * poly[m];
                poly[0] *= shift;
                degree++;
                denominator *= sigmas[k] - sigmas[j];
            }
            double integral = 0, power = h;
            for (int m = 0; m <= degree; m++, power *= h) integral += poly[m] * power / (m + 1);
            coefficients[k] = integral / denominator;
        }
    }
}
