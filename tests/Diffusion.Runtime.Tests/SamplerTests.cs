using Diffusion.ReferenceModels;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// Every sampler against the closed-form Gaussian model: 2048 samples must have mean μ ± 0.03 and std s ± 5%.
/// </summary>
public class SamplerTests
{
    public static TheoryData<string, int, bool> Cases => new()
    {
        // Stochastic samplers forget x_T, so the grid's last gap matters less; the ODE solvers are first or second
        // order in the step and use Karras' grid, whose last noisy level is σ_min = σ(0).
        { "ddpm", 250, false },
        { "ddpm-large", 250, false },
        { "euler-maruyama", 500, false },
        { "pc", 250, false },
        { "dpm++2m-sde", 50, false },
        { "dpm++2m-sde", 50, true },
        // 3M SDE's second differences of noisy D's over-disperse at few steps (std +5.7 % at 50 trailing steps,
        // +28 % at 20 Karras steps — as a NumPy transcription of k-diffusion's update gives too); 100 steps are within
        // 2 %.
        { "dpm++3m-sde", 100, false },
        { "dpm++3m-sde", 50, true },
        { "euler-ancestral", 250, false },
        { "ddim", 250, true },
        { "euler", 250, true },
        { "heun", 40, true },
        { "dpm++2m", 40, true },
        { "unipc", 40, true },
        { "rk45", 1, false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Samples_of_the_Gaussian_model_have_its_mean_and_std(string sampler, int steps, bool karras)
    {
        using var model = Fixtures.Gaussian();
        var r = Fixtures.Generate(model, sampler, steps, karras: karras);
        var (mean, std) = Fixtures.Moments(r.Images);
        Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
        Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
    }

    [Fact]
    public void Few_steps_with_a_large_final_gap_shrink_the_spread_as_theory_predicts()
    {
        // DDIM's last step to σ = 0 from σ_last returns D = μ + s²/(s² + σ_last²)(x̃ − μ): with trailing spacing and
        // 10 steps (last level t = 99, σ ≈ 0.34) the spread must visibly shrink — the moment check can fail.
        using var model = Fixtures.Gaussian();
        var (_, std) = Fixtures.Moments(Fixtures.Generate(model, "ddim", 10).Images);
        Assert.True(std < Fixtures.Std * 0.8, $"std {std}");
    }

    [Fact]
    public void Ddim_with_eta_one_is_stochastic_and_still_correct()
    {
        using var model = Fixtures.Gaussian();
        var r = Fixtures.Generate(model, "ddim", 250, eta: 1);
        var (mean, std) = Fixtures.Moments(r.Images);
        Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
        Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
        var deterministic = Fixtures.Generate(model, "ddim", 250, count: 8, eta: 0);
        var stochastic = Fixtures.Generate(model, "ddim", 250, count: 8, eta: 1);
        Assert.NotEqual(deterministic.Images, stochastic.Images);
    }

    [Fact]
    public void A_sampler_that_ignores_the_model_fails_the_moment_check()
    {
        // The assertion above can fail: too few DDPM steps leave the wrong spread.
        using var model = Fixtures.Gaussian();
        var (_, std) = Fixtures.Moments(Fixtures.Generate(model, "ddpm", 2).Images);
        Assert.False(std > Fixtures.Std * 0.95 && std < Fixtures.Std * 1.05, $"std {std} at 2 DDPM steps");
    }

    public static TheoryData<string, double> Deterministic => new()
    {
        // Error ratio expected when the steps double: 2 for first-order solvers, 4 for second order (less a margin).
        { "ddim", 1.6 }, { "euler", 1.6 }, { "heun", 3 }, { "dpm++2m", 3 }, { "unipc", 3 }, { "lms", 3 },
    };

    /// <summary>For N(μ, s²) data the probability-flow ODE is solvable: x₀ = μ + (x̃_T − μ)·s/√(s² + σ_T²).</summary>
    [Theory]
    [MemberData(nameof(Deterministic))]
    public void Deterministic_solvers_converge_to_the_exact_ODE_solution_at_their_order(string sampler, double ratio)
    {
        using var model = Fixtures.Gaussian();
        double e20 = OdeError(model, sampler, 20), e40 = OdeError(model, sampler, 40),
            e80 = OdeError(model, sampler, 80);
        Assert.True(e40 < e20 && e80 < e40, $"{sampler}: errors {e20}, {e40}, {e80} at 20, 40, 80 steps do not shrink");
        Assert.True(e40 / e80 >= ratio, $"{sampler}: error ratio {e40 / e80} between 40 and 80 steps is below {ratio}");
    }

    [Fact]
    public void Euler_ancestral_without_noise_is_euler_and_with_noise_is_not()
    {
        using var model = Fixtures.Gaussian();
        var euler = Fixtures.Generate(model, "euler", 15, count: 4, batch: 4);
        Assert.Equal(euler.Images, Fixtures.Generate(model, "euler-ancestral", 15, count: 4, batch: 4, eta: 0).Images);
        Assert.NotEqual(euler.Images, Fixtures.Generate(model, "euler-ancestral", 15, count: 4, batch: 4).Images);
    }

    [Fact]
    public void Euler_ancestral_is_ddim_with_eta_one_written_in_sigma_space()
    {
        // σ↑ = σ′√(σ² − σ′²)/σ equals DDIM(η = 1)'s noise divided by √ᾱ′ and σ↓ = √(σ′² − σ↑²) its ε̂ coefficient, so
        // with the same noise draws the two must agree up to float rounding.
        using var model = Fixtures.Gaussian();
        var ancestral = Fixtures.Generate(model, "euler-ancestral", 10, count: 4, batch: 4);
        var ddim = Fixtures.Generate(model, "ddim", 10, count: 4, batch: 4, eta: 1);
        var deterministic = Fixtures.Generate(model, "ddim", 10, count: 4, batch: 4, eta: 0);
        double Distance(float[] a, float[] b) => a.Zip(b, (u, v) => Math.Abs(u - v)).Max();
        Assert.True(Distance(ancestral.Images, ddim.Images) < 1e-3, $"{Distance(ancestral.Images, ddim.Images)}");
        Assert.True(Distance(ancestral.Images, deterministic.Images) > 0.1);
    }

    [Fact]
    public void Dpm_solver_3m_without_noise_converges_at_third_order()
    {
        // η = 0 turns DPM-Solver++(3M) SDE into the deterministic 3M solver. On this Karras grid its error falls 17×
        // from 20
        // to 40 steps (0.018 → 0.001); the second-order dpm++2m's falls 4.2× (0.055 → 0.013), so ≥ 8 fails without the
        // third-order term.
        using var model = Fixtures.Gaussian();
        double Error(int steps) =>
            OdeError(model, Fixtures.Generate(model, "dpm++3m-sde", steps, count: 16, batch: 16, karras: true, eta: 0),
                rk45: false);
        double e10 = Error(10), e20 = Error(20), e40 = Error(40);
        Assert.True(e20 < e10 && e40 < e20, $"errors {e10}, {e20}, {e40} at 10, 20, 40 steps do not shrink");
        Assert.True(e20 / e40 >= 8,
            $"error ratio {e20 / e40} between 20 and 40 steps is below 8 ({e10}, {e20}, {e40})");
    }

    [Fact]
    public void Linear_multistep_coefficients_are_adams_bashforth_on_even_steps_and_the_method_is_higher_order()
    {
        // On evenly spaced σ the Lagrange integrals are Adams–Bashforth's weights: h, (3h/2, −h/2), (23, −16, 5)·h/12,
        // (55, −59, 37, −9)·h/24.
        double h = -0.25;
        double[][] expected = [[1], [1.5, -0.5], [23 / 12.0, -16 / 12.0, 5 / 12.0],
            [55 / 24.0, -59 / 24.0, 37 / 24.0, -9 / 24.0]];
        for (int order = 1; order <= 4; order++)
        {
            // the current σ first, then earlier (larger) ones
            var sigmas = Enumerable.Range(0, order).Select(k => 2.0 - k * h).ToArray();
            var c = new double[order];
            LinearMultistep.Coefficients(sigmas, 2.0 + h, c);
            for (int k = 0; k < order; k++) Assert.Equal(expected[order - 1][k] * h, c[k], 1e-12);
        }
        // On Karras' grid the 4th-order method's error falls more than 8× when the steps double (dpm++2m's: 4.2×).
        using var model = Fixtures.Gaussian();
        double Error(int steps) =>
            OdeError(model, Fixtures.Generate(model, "lms", steps, count: 16, batch: 16, karras: true), rk45: false);
        double e20 = Error(20), e40 = Error(40);
        Assert.True(e20 / e40 >= 8, $"error ratio {e20 / e40} between 20 and 40 steps is below 8 ({e20}, {e40})");
    }

    [Fact]
    public void Rk45_converges_as_the_tolerance_tightens_and_reports_its_evaluations()
    {
        using var model = Fixtures.Gaussian();
        var loose = Fixtures.Generate(model, "rk45", 1, count: 16, batch: 16, rtol: 1e-2);
        var tight = Fixtures.Generate(model, "rk45", 1, count: 16, batch: 16, rtol: 1e-5);
        double looseError = OdeError(model, loose, rk45: true), tightError = OdeError(model, tight, rk45: true);
        Assert.True(tightError < looseError, $"{tightError} vs {looseError}");
        Assert.True(tightError < 1e-3, $"{tightError}");
        Assert.True(tight.EvaluationsPerImage > loose.EvaluationsPerImage);
        Assert.InRange(loose.EvaluationsPerImage, 8, 500);
    }

    private static double OdeError(DiffusionModel model, string sampler, int steps) =>
        OdeError(model, Fixtures.Generate(model, sampler, steps, count: 16, batch: 16, karras: true), rk45: false);

    private static double OdeError(DiffusionModel model, GenerationResult r, bool rk45)
    {
        var generator = new ImageGenerator(model);
        var grid = generator.Grid(new GenerationRequest { Steps = 10, KarrasSigmas = true });
        double sigmaT = grid[0].Sigma, alphaT = grid[0].Alpha, s = Fixtures.Std, mu = Fixtures.Mean;
        double sigmaMin = model.Schedule.SigmaMin;
        var noise = new float[r.Images.Length];
        new Noise.NoiseGenerator(7).Fill(noise, 0, r.ImageSize, 0);
        double worst = 0;
        for (int i = 0; i < noise.Length; i++)
        {
            double xT = noise[i] / alphaT;
            double exact = mu + (xT - mu) * s / Math.Sqrt(s * s + sigmaT * sigmaT);
            if (rk45) // rk45 integrates to σ_min and then applies D(x̃, σ_min) = μ + s²/(s² + σ²)(x̃ − μ)
                exact = mu
                    + (xT - mu) * Math.Sqrt(s * s + sigmaMin * sigmaMin) / Math.Sqrt(s * s
                        + sigmaT * sigmaT) * s * s / (s * s + sigmaMin * sigmaMin);
            worst = Math.Max(worst, Math.Abs(r.Images[i] - exact));
        }
        return worst;
    }

    [Theory]
    [InlineData("v_prediction")]
    [InlineData("sample")]
    public void Every_prediction_type_gives_the_same_epsilon_and_x0(string prediction)
    {
        using var reference = Fixtures.Gaussian();
        using var other = Fixtures.Gaussian(prediction);
        using var a = new Denoiser(reference, 4);
        using var b = new Denoiser(other, 4);
        var x = new float[4 * reference.ImageSize];
        new Noise.NoiseGenerator(3).Fill(x, 0, reference.ImageSize, 0);
        foreach (var t in new[] { 999.0, 500.5, 20, 0 })
        {
            var level = NoiseLevel.At(reference.Schedule, t);
            float[] epsA = new float[x.Length], x0A = new float[x.Length], epsB = new float[x.Length],
                x0B = new float[x.Length];
            a.Predict(x, level, epsA, x0A);
            b.Predict(x, level, epsB, x0B);
            for (int i = 0; i < x.Length; i++)
            {
                Assert.Equal(epsA[i], epsB[i], 2e-3 * Math.Max(1, 1 / level.SigmaVp));
                Assert.Equal(x0A[i], x0B[i], 2e-3 * Math.Max(1, 1 / level.Alpha));
            }
        }
        var r = Fixtures.Generate(other, "dpm++2m", 40, karras: true);
        var (mean, std) = Fixtures.Moments(r.Images);
        Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
        Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
    }

    [Fact]
    public void Classifier_free_guidance_moves_the_mean_to_the_guided_combination()
    {
        // With ε̂_w = ε̂_∅ + w(ε̂_c − ε̂_∅) and equal s, the guided model is exactly N(μ_∅ + w(μ_c − μ_∅), s²).
        var spec = Fixtures.Spec() with
        {
            ClassMeans = [[-0.5f], [0.2f], [0f]], Config = new DiffusionConfig
            {
                ClassNames = ["dark", "light"], NumClasses = 2,
            }
        };
        using var model = Fixtures.Load(spec);
        foreach (var (label, w, expected) in new[] { (1, 3f, 0.6), (0, 1f, -0.5), (0, 0f, 0.0), (1, 1.5f, 0.3) })
        {
            var r = new ImageGenerator(model).Generate(new GenerationRequest
            {
                Sampler = "dpm++2m", Steps = 40, KarrasSigmas = true, Count = 1024, BatchSize = 256, Seed = 1,
                Guidance = w, ClassLabels = [label],
            });
            var (mean, std) = Fixtures.Moments(r.Images);
            Assert.InRange(mean, expected - 0.03, expected + 0.03);
            Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
        }
        Assert.Equal(1, model.ResolveClass("LIGHT"));
        Assert.Contains("dark, light",
            Assert.Throws<DiffusionArgumentException>(() => model.ResolveClass("medium")).Message);
    }

    [Fact]
    public void Clip_sample_bounds_the_predicted_x0()
    {
        var spec = Fixtures.Spec() with { Config = new DiffusionConfig { ClipSample = true, ClipSampleRange = 0.2 } };
        using var model = Fixtures.Load(spec);
        var r = Fixtures.Generate(model, "ddim", 20, count: 64);
        Assert.All(r.Images, v => Assert.InRange(v, -0.2f, 0.2f + 1e-6f));
        Assert.Contains(r.Images, v => v > 0.199f);
    }

    [Fact]
    public void Dynamic_thresholding_rescales_x0_into_range()
    {
        // Data far outside [−1, 1]: thresholding must bring every predicted x̂₀ back to [−1, 1] (sample_max_value 1).
        var spec = Fixtures.Spec() with
        {
            Mean = [3f], Config = new DiffusionConfig { Thresholding = true, SampleMaxValue = 1 }
        };
        using var model = Fixtures.Load(spec);
        var r = Fixtures.Generate(model, "ddim", 20, count: 64);
        Assert.All(r.Images, v => Assert.InRange(v, -1f, 1f + 1e-6f));
        using var plain = Fixtures.Load(spec with { Config = new DiffusionConfig() });
        Assert.Contains(Fixtures.Generate(plain, "ddim", 20, count: 64).Images, v => v > 2);
    }

    [Fact]
    public void Zero_terminal_snr_v_prediction_model_samples_correctly()
    {
        var spec = Fixtures.Spec("v_prediction") with
        {
            Config = new DiffusionConfig
            {
                PredictionType = "v_prediction", RescaleBetasZeroSnr = true, BetaSchedule = "scaled_linear",
                BetaStart = 0.00085, BetaEnd = 0.012,
            },
        };
        using var model = Fixtures.Load(spec);
        foreach (var sampler in new[] { "ddim", "dpm++2m" })
        {
            var (mean,
                std) = Fixtures.Moments(Fixtures.Generate(model, sampler, sampler == "ddim" ? 250 : 40,
                    karras: true).Images);
            Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
            Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
        }
    }

    [Fact]
    public void Cosine_schedule_model_samples_correctly()
    {
        var spec = Fixtures.Spec() with { Config = new DiffusionConfig { BetaSchedule = "squaredcos_cap_v2" } };
        using var model = Fixtures.Load(spec);
        var (mean, std) = Fixtures.Moments(Fixtures.Generate(model, "unipc", 40, karras: true).Images);
        Assert.InRange(mean, Fixtures.Mean - 0.03, Fixtures.Mean + 0.03);
        Assert.InRange(std, Fixtures.Std * 0.95, Fixtures.Std * 1.05);
    }

    [Theory]
    [InlineData("euler_a", "euler-ancestral")]
    [InlineData("Euler a", "euler-ancestral")]
    [InlineData("dpmpp_2m", "dpm++2m")]
    [InlineData("DPM++ 2M", "dpm++2m")]
    [InlineData("DPMSolverMultistepScheduler", "dpm++2m")]
    [InlineData("sample_dpmpp_2m_sde", "dpm++2m-sde")]
    [InlineData("DDIMScheduler", "ddim")]
    [InlineData("UniPCMultistepScheduler", "unipc")]
    [InlineData("HEUN", "heun")]
    public void Familiar_sampler_names_resolve_to_ours(string alias, string name)
    {
        Assert.Equal(name, SamplerRegistry.Find(alias)?.Name);
        Assert.Equal(name, SamplerRegistry.Create(alias).Name);
    }

    [Fact]
    public void Aliases_are_unambiguous_and_unknown_names_say_what_is_known()
    {
        static string Key(string n) =>
            new(n.Where(c => !char.IsWhiteSpace(c)
                && c is not ('_' or '-' or '+' or '.')).Select(char.ToLowerInvariant).ToArray());
        var names = SamplerRegistry.All.Select(e => (Key: Key(e.Name), Target: e.Name))
            .Concat(SamplerRegistry.All.SelectMany(e => e.Aliases.Select(a => (Key: Key(a), Target: e.Name))));
        foreach (var group in names.GroupBy(n => n.Key))
            Assert.True(group.Select(n => n.Target).Distinct().Count() == 1,
                $"'{group.Key}' names {string.Join(" and ", group.Select(n => n.Target).Distinct())}");
        Assert.Equal(SamplerRegistry.All.Count, SamplerRegistry.All.Select(e => e.Name).Distinct().Count());
        var e = Assert.Throws<DiffusionArgumentException>(() => SamplerRegistry.Create("plms"));
        Assert.Equal("Sampler", e.Parameter);
        Assert.Contains("unipc", e.Message);
        Assert.Contains("euler_a", e.Message);
    }

    [Fact]
    public void Rk45s_evaluation_budget_is_per_batch_not_per_request()
    {
        using var model = Fixtures.Gaussian();
        var one = new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "rk45", Steps = 1, Count = 4, BatchSize = 4, Options = new SamplerOptions
            {
                RelativeTolerance = 1e-3, AbsoluteTolerance = 1e-3,
            }
        });
        int perBatch = (int)one.NetworkCalls;
        var options = new SamplerOptions
        {
            RelativeTolerance = 1e-3, AbsoluteTolerance = 1e-3, MaxEvaluations = perBatch * 3 / 2,
        };
        var four = new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "rk45", Steps = 1, Count = 16, BatchSize = 4, Options = options,
        });
        Assert.True(four.NetworkCalls > options.MaxEvaluations,
            "the request as a whole must exceed the per-batch budget for this test to mean anything");
        var tooTight = options with { MaxEvaluations = perBatch / 3 };
        Assert.Contains("did not reach",
            Assert.Throws<DiffusionException>(() =>
                new ImageGenerator(model).Generate(new GenerationRequest
                {
                    Sampler = "rk45", Steps = 1, Count = 4, BatchSize = 4, Options = tooTight,
                })).Message);
    }

    [Fact]
    public void Ddpm_takes_the_variance_the_models_config_names()
    {
        using var small = Fixtures.Load(Fixtures.Spec());
        using var large = Fixtures.Load(Fixtures.Spec() with
        {
            Config = new DiffusionConfig { VarianceType = "fixed_large" }
        });
        float[] Run(DiffusionModel m, string sampler) => Fixtures.Generate(m, sampler, 10, count: 8, batch: 8).Images;
        Assert.Equal(Run(large, "ddpm-large"), Run(large, "ddpm"));
        Assert.Equal(Run(small, "ddpm-large"), Run(large, "ddpm"));
        Assert.NotEqual(Run(small, "ddpm"), Run(large, "ddpm"));
    }

    [Fact]
    public void A_sampler_chosen_by_type_carries_its_own_settings_and_defaults()
    {
        Assert.Equal(0, new Ddim().Eta);
        Assert.Equal(1, new EulerAncestral().Eta);
        Assert.Equal(1, new DpmSolverPlusPlus2MSde().Eta);
        Assert.Equal((0.16, 1), (new PredictorCorrector().Snr, new PredictorCorrector().CorrectorSteps));
        Assert.Equal((1e-3, 1e-3), (new DormandPrince().RelativeTolerance, new DormandPrince().AbsoluteTolerance));
        // A sampler's declared defaults are the ones its instances and its by-name creation take.
        foreach (var info in SamplerRegistry.All)
            Assert.Equal(info.Name, info.Create(new SamplerOptions()).Name);
        Assert.Equal(new Ddim().Eta, Ddim.Info.Defaults.Eta);
        Assert.Equal(new DormandPrince().MaxEvaluations, DormandPrince.Info.Defaults.MaxEvaluations);
        // Settings by name reach the sampler that reads them; one it does not read is refused, naming the knob.
        Assert.Equal(0.3, ((Ddim)SamplerRegistry.Create("ddim", new SamplerOptions { Eta = 0.3 })).Eta);
        Assert.Equal(1, ((EulerAncestral)SamplerRegistry.Create("euler_a", new SamplerOptions())).Eta);
        var unread = Assert.Throws<DiffusionArgumentException>(() =>
            SamplerRegistry.Create("ddim", new SamplerOptions { Snr = 9 }));
        Assert.Equal(nameof(SamplerOptions.Snr), unread.Parameter);
        Assert.Contains("pc", unread.Problem);
        Assert.Equal(nameof(SamplerOptions.RelativeTolerance), Assert.Throws<DiffusionArgumentException>(() =>
            SamplerRegistry.Create("euler", new SamplerOptions { RelativeTolerance = 1e-4 })).Parameter);

        using var model = Fixtures.Gaussian();
        var generator = new ImageGenerator(model);
        var byName = generator.Generate(new GenerationRequest
        {
            Sampler = "ddim", Steps = 10, Count = 8, BatchSize = 8, Seed = 2, Options = new SamplerOptions
            {
                Eta = 0.5,
            }
        });
        var byType = generator.Generate(new GenerationRequest
        {
            SamplerInstance = new Ddim { Eta = 0.5 }, Steps = 10, Count = 8, BatchSize = 8, Seed = 2,
        });
        Assert.Equal(byName.Images, byType.Images);
        Assert.Equal(("ddim", "ddim"), (byName.Sampler, byType.Sampler));
        // A name and an instance, or an instance with settings by name, are two owners of one choice: refused.
        Assert.Equal("Sampler", Assert.Throws<DiffusionArgumentException>(() => generator.Generate(new GenerationRequest
            { Sampler = "unipc", SamplerInstance = new Ddim() })).Parameter);
        Assert.Equal("Eta", Assert.Throws<DiffusionArgumentException>(() => generator.Generate(new GenerationRequest
            { SamplerInstance = new Ddim(), Options = new SamplerOptions { Eta = 0.5 } })).Parameter);
        var deterministic = generator.Generate(new GenerationRequest
        {
            SamplerInstance = new Ddim(), Steps = 10, Count = 8, BatchSize = 8, Seed = 2,
        });
        Assert.NotEqual(byName.Images, deterministic.Images);
        Assert.Equal("Eta",
            Assert.Throws<DiffusionArgumentException>(() =>
                generator.Generate(new GenerationRequest { SamplerInstance = new Ddim { Eta = 2 } })).Parameter);
        Assert.Equal("Snr",
            Assert.Throws<DiffusionArgumentException>(() =>
                generator.Generate(new GenerationRequest
                {
                    SamplerInstance = new PredictorCorrector { Snr = 0 }
                })).Parameter);
    }
}
