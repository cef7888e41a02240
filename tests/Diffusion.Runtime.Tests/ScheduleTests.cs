using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Tests;

public class ScheduleTests
{
    [Fact]
    public void Cosine_alpha_bar_matches_the_closed_form_of_Nichol_and_Dhariwal()
    {
        // With β_t = 1 − f((t+1)/T)/f(t/T) the product telescopes: ᾱ_t = f((t+1)/T)/f(0), until the 0.999 cap bites.
        var s = NoiseSchedule.Create(BetaScheduleKind.SquaredCosCapV2, 1000, 0, 0);
        static double F(double u) => Math.Pow(Math.Cos((u + 0.008) / 1.008 * Math.PI / 2), 2);
        foreach (var t in new[] { 0, 1, 100, 500, 900, 980 })
            Assert.Equal(F((t + 1) / 1000.0) / F(0), s.AlphasCumprod[t], 1e-9);
    }

    [Fact]
    public void Linear_schedule_has_the_known_endpoints()
    {
        var s = NoiseSchedule.Create(BetaScheduleKind.Linear, 1000, 1e-4, 0.02);
        Assert.Equal(1e-4, s.Betas[0], 12);
        Assert.Equal(0.02, s.Betas[999], 12);
        Assert.Equal(0.9999, s.AlphasCumprod[0], 12);
        // ᾱ_999 = ∏(1 − β_i) ≈ exp(−Σβ − Σβ²/2 …) ≈ 4.04e−5: the value every DDPM implementation prints.
        Assert.InRange(s.AlphasCumprod[999], 4.0e-5, 4.1e-5);
        Assert.Equal(157.4, s.SigmaMax, 0.1);
    }

    [Fact]
    public void Scaled_linear_and_quadratic_are_linear_in_sqrt_beta()
    {
        foreach (var kind in new[] { BetaScheduleKind.ScaledLinear, BetaScheduleKind.Quadratic })
        {
            var b = BetaSchedule.Betas(kind, 1001, 0.00085, 0.012);
            Assert.Equal(0.00085, b[0], 12);
            Assert.Equal(0.012, b[1000], 12);
            Assert.Equal(Math.Pow((Math.Sqrt(0.00085) + Math.Sqrt(0.012)) / 2, 2), b[500], 12);
        }
    }

    [Fact]
    public void Sigmoid_schedule_is_centred_between_start_and_end()
    {
        var b = BetaSchedule.Betas(BetaScheduleKind.Sigmoid, 1001, 1e-4, 0.02);
        Assert.Equal((1e-4 + 0.02) / 2, b[500], 12);
        Assert.Equal(1e-4 + 0.0199 / (1 + Math.Exp(6)), b[0], 12);
    }

    [Fact]
    public void Zero_terminal_snr_rescale_ends_at_zero_and_keeps_the_start()
    {
        var plain = NoiseSchedule.Create(BetaScheduleKind.ScaledLinear, 1000, 0.00085, 0.012);
        var zsnr = NoiseSchedule.Create(BetaScheduleKind.ScaledLinear, 1000, 0.00085, 0.012,
            rescaleZeroTerminalSnr: true);
        Assert.Equal(0, zsnr.AlphasCumprod[999], 15);
        Assert.Equal(plain.AlphasCumprod[0], zsnr.AlphasCumprod[0], 12);
        Assert.True(double.IsFinite(zsnr.SigmaMax));
        Assert.Equal(Math.Sqrt((1 - NoiseLevel.MinAlphaBar) / NoiseLevel.MinAlphaBar), zsnr.SigmaMax, 6);
    }

    [Fact]
    public void Fractional_timesteps_interpolate_and_invert()
    {
        var s = NoiseSchedule.Create(BetaScheduleKind.Linear, 1000, 1e-4, 0.02);
        Assert.Equal((s.AlphasCumprod[10] + s.AlphasCumprod[11]) / 2, s.AlphaBar(10.5), 15);
        var property = FsCheck.Fluent.Prop.ForAll(FsCheck.Fluent.ArbMap.Default.ArbFor<ushort>(), (ushort raw) =>
        {
            double t = raw % 9990 / 10.0; // 0 … 998.9
            return Math.Abs(s.Timestep(s.AlphaBar(t)) - t) < 1e-6 && Math.Abs(s.TimestepOfSigma(s.Sigma(t)) - t) < 1e-6;
        });
        FsCheck.Check.QuickThrowOnFailure(property);
    }

    [Theory]
    [InlineData(TimestepSpacing.Trailing, new double[] { 999, 899, 799, 699, 599, 499, 399, 299, 199, 99 })]
    [InlineData(TimestepSpacing.Leading, new double[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 })]
    [InlineData(TimestepSpacing.Linspace, new double[] { 999, 888, 777, 666, 555, 444, 333, 222, 111, 0 })]
    public void Spacing_rules_match_Lin_et_al_table_2(TimestepSpacing spacing, double[] expected) =>
        Assert.Equal(expected, TimestepSpacings.Timesteps(spacing, 1000, 10));

    [Fact]
    public void Leading_spacing_adds_steps_offset() =>
        Assert.Equal([801, 601, 401, 201, 1],
            TimestepSpacings.Timesteps(TimestepSpacing.Leading, 1000, 5, stepsOffset: 1));

    [Fact]
    public void Karras_grid_spans_sigma_max_to_sigma_min_with_rho_7()
    {
        var sigmas = KarrasSigmas.Create(10, 0.002, 80);
        Assert.Equal(80, sigmas[0], 9);
        Assert.Equal(0.002, sigmas[^1], 12);
        for (int i = 1; i < sigmas.Length; i++) Assert.True(sigmas[i] < sigmas[i - 1]);
        // Karras et al. Eq. 5 at i = 5 of 10, computed by hand.
        double a = Math.Pow(80, 1 / 7.0), b = Math.Pow(0.002, 1 / 7.0);
        Assert.Equal(Math.Pow(a + 5 / 9.0 * (b - a), 7), sigmas[5], 12);
    }

    [Fact]
    public void Sampling_grid_ends_at_the_clean_level_and_Karras_levels_have_their_sigma()
    {
        var s = NoiseSchedule.Create(BetaScheduleKind.Linear, 1000, 1e-4, 0.02);
        var grid = SamplingGrid.Create(s, 8, new GridOptions { Karras = true });
        Assert.Equal(9, grid.Length);
        Assert.True(grid[^1].IsClean);
        Assert.Equal(s.SigmaMax, grid[0].Sigma, 6);
        Assert.Equal(999, grid[0].Timestep, 6);
        Assert.Equal(s.SigmaMin, grid[^2].Sigma, 9);
        var expected = KarrasSigmas.Create(8, s.SigmaMin, s.SigmaMax);
        for (int i = 0; i < 8; i++) Assert.Equal(expected[i], grid[i].Sigma, 6);
    }

    [Fact]
    public void Too_many_steps_for_a_spacing_rule_is_a_clear_error()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            TimestepSpacings.Timesteps(TimestepSpacing.Trailing, 1000, 1001));
        Assert.Contains("1000 training timesteps", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => TimestepSpacings.Timesteps(TimestepSpacing.Trailing, 1000, 0));
    }

    [Fact]
    public void Unknown_schedule_names_are_rejected() =>
        Assert.Contains("squaredcos_cap_v2",
            Assert.Throws<ArgumentException>(() => BetaSchedule.Parse("cosinus")).Message);

    [Fact]
    public void Multistep_solvers_divide_leading_and_linspace_grids_into_n_plus_one_and_skip_t_near_zero()
    {
        using var model = Diffusion.Tests.Fixtures.Gaussian(); // T = 1000, steps_offset 0
        var generator = new Generation.ImageGenerator(model);
        double[] Timesteps(string sampler, TimestepSpacing spacing) =>
            generator.Grid(new Generation.GenerationRequest
            {
                Sampler = sampler, Steps = 20, Spacing = spacing,
            })[..^1].Select(l => l.Timestep).ToArray();
        foreach (var multistep in new[] { "dpm++2m", "dpm++2m-sde", "dpm++3m-sde", "unipc" })
        {
            // DPM-Solver's and UniPC's own rule: ⌊1000/21⌋ = 47 apart, 940 … 47; linspace(0, 999, 21) without its 0.
            Assert.Equal(Enumerable.Range(1, 20).Reverse().Select(k => 47.0 * k),
                Timesteps(multistep, TimestepSpacing.Leading));
            Assert.Equal(Enumerable.Range(1, 20).Reverse().Select(k =>
                Math.Round(999 * k / 20.0, MidpointRounding.ToEven)), Timesteps(multistep, TimestepSpacing.Linspace));
            Assert.Equal(Timesteps("ddim", TimestepSpacing.Trailing), Timesteps(multistep, TimestepSpacing.Trailing));
        }
        foreach (var single in new[] { "ddim", "euler", "heun", "ddpm" })
            // 950 … 0
            Assert.Equal(Enumerable.Range(0, 20).Reverse().Select(k => 50.0 * k),
                Timesteps(single, TimestepSpacing.Leading));
    }
}
