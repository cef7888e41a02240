namespace Diffusion.Runtime.Samplers;

/// <summary>
/// DPM-Solver++(3M) SDE (Lu et al. 2022's multistep data-prediction solver at third order, with k-diffusion's SDE
/// noise): with λ = −log σ, h = λ′ − λ, ĥ = (1 + η)h, x̃′ = (σ′/σ) e^{−ηh} x̃ + (1 − e^{−ĥ}) D + φ₂ D₁ − φ₃ D₂ + σ′ √(1
/// − e^{−2ηh}) z, where D₁, D₂ are the first and second divided differences of the last three D's in λ (scaled by h),
/// φ₂ = (e^{−ĥ} − 1)/ĥ + 1, φ₃ = φ₂/ĥ − ½. Lower order while history is short; the last step to σ = 0 returns D. η = 0
/// is the deterministic DPM-Solver++(3M). diffusers' DPMSolverMultistep at solver_order 3 is this at η = 0 with its
/// second-order steps in the midpoint form (<see cref="MidpointSecondOrder"/>) and orders capped near the end
/// (<see cref="LastStepOrder"/>, <see cref="SecondLastStepOrder"/>).
/// </summary>
public sealed class DpmSolverPlusPlus3MSde : ISampler
{
    private static readonly SamplerOptions Defaults = new() { Eta = 1 };

    /// <summary>The sampler's name, knobs and defaults.</summary>
    public static SamplerInfo Info { get; } = new("dpm++3m-sde",
        "DPM-Solver++(3M) SDE, multistep 3rd order, η = 1 (0 = ODE) — Lu et al. 2022")
    {
        Aliases = ["dpmpp_3m_sde", "DPM++ 3M SDE", "sample_dpmpp_3m_sde"],
        Knobs = SamplerKnobs.Eta,
        Defaults = Defaults,
        IsMultistep = true,
        Create = o => new DpmSolverPlusPlus3MSde { Eta = o.Eta ?? Defaults.Eta!.Value },
    };

    SamplerInfo ISampler.Info => Info;

    /// <summary>Stochasticity η: 0 is the deterministic (ODE) update, 1 the full ancestral noise.</summary>
    public double Eta { get; init; } = Defaults.Eta!.Value;

    /// <summary>
    /// Second-order steps as ½(1 − e^{−ĥ})·(D − D₋₁)/r (Lu et al.'s midpoint form, diffusers' default) instead of φ₂·(D
    /// − D₋₁)/r (k-diffusion's).
    /// </summary>
    public bool MidpointSecondOrder { get; init; }

    /// <summary>The highest order of the last step when it ends at a noisy level (to σ = 0 it returns D).</summary>
    public int LastStepOrder { get; init; } = 3;

    /// <summary>The highest order of the second-to-last step.</summary>
    public int SecondLastStepOrder { get; init; } = 3;

    /// <inheritdoc />
    public void Validate() => SamplerSettings.CheckEta(Eta);

    /// <inheritdoc />
    public void Sample(SamplingContext c)
    {
        double eta = Eta;
        float[] x = c.X, denoised = c.Buffer(0), previous = c.Buffer(1), older = c.Buffer(2), d1 = c.Buffer(3),
            d2 = c.Buffer(4), z = c.Buffer(5);
        Vec.Scale(x, 1 / c.Grid[0].Alpha, x);
        double h1 = 0, h2 = 0;
        for (int i = 0; i < c.Steps; i++)
        {
            var (now, next) = (c.Grid[i], c.Grid[i + 1]);
            c.Model.Denoise(x, now, denoised);
            if (next.IsClean)
            {
                denoised.CopyTo(x);
            }
            else
            {
                double h = next.Lambda - now.Lambda, hEta = (1 + eta) * h;
                Vec.Axpby(x, next.Sigma / now.Sigma * Math.Exp(-eta * h), x, -double.ExpM1(-hEta), denoised);
                double phi2 = double.ExpM1(-hEta) / hEta + 1;
                int order = Math.Min(i + 1, i == c.Steps - 1 ? LastStepOrder : i == c.Steps - 2 ? SecondLastStepOrder
                    : 3);
                if (order >= 3)
                {
                    // d1_0 = (D − D₋₁)/r0, d1_1 = (D₋₁ − D₋₂)/r1; D₁ = d1_0 + (d1_0 − d1_1) r0/(r0 + r1), D₂ = (d1_0 −
                    // d1_1)/(r0 + r1)
                    double r0 = h1 / h, r1 = h2 / h, phi3 = phi2 / hEta - 0.5;
                    Vec.Axpby(d1, 1 / r0, denoised, -1 / r0, previous);   // d1_0
                    Vec.Axpby(d2, 1 / r1, previous, -1 / r1, older);      // d1_1
                    Vec.Axpby(d2, 1 / (r0 + r1), d1, -1 / (r0 + r1), d2); // D₂
                    Vec.AddScaled(d1, r0, d2);                             // D₁ = d1_0 + r0·D₂
                    Vec.AddScaled(x, phi2, d1);
                    Vec.AddScaled(x, -phi3, d2);
                }
                else if (order == 2)
                {
                    double r = h1 / h, k = MidpointSecondOrder ? -0.5 * double.ExpM1(-hEta) : phi2;
                    Vec.AddScaled(x, k / r, denoised);
                    Vec.AddScaled(x, -k / r, previous);
                }
                if (eta > 0)
                {
                    c.DrawNoise(z);
                    Vec.AddScaled(x, next.Sigma * Math.Sqrt(-double.ExpM1(-2 * eta * h)), z);
                }
                (h1, h2) = (h, h1);
            }
            (denoised, previous, older) = (older, denoised, previous);
            c.StepDone(i, x, SampleSpace.Sigma);
        }
    }
}
