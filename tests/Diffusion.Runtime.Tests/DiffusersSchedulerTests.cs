using System.Text.Json.Nodes;
using Diffusion.Runtime.Diffusers;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;

namespace Diffusion.Runtime.Tests;

/// <summary>
/// diffusers' own schedulers (0.31, run by interop/diffusers/make_fixtures.py) on the closed-form Gaussian denoiser
/// against the runtime's reproduction of them: the same grid, and within 1e-3 the same images for the same x_T.
/// </summary>
public class DiffusersSchedulerTests
{
    private static readonly JsonObject Data = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "Diffusers", "gaussian.json")))!;

    public static TheoryData<string> Cases() => new(((JsonArray)Data["cases"]!).Select(c => (string)c!["name"]!));

    private static JsonObject Case(string name) => (JsonObject)((JsonArray)Data["cases"]!).First(c => (string)c!["name"]! == name)!;

    private static float[] Floats(JsonNode? node) => ((JsonArray)node!).Select(v => (float)(double)v!).ToArray();

    /// <summary>The Gaussian model with the case's betas and prediction type, and its diffusers scheduler.</summary>
    internal static (DiffusionModel Model, DiffusersScheduler Scheduler) Load(JsonObject c)
    {
        var config = DiffusionConfig.Parse((string)c["config"]!, (string)c["name"]!);
        var model = Fixtures.Load(Fixtures.Spec() with { Config = config with { Scheduler = null } });
        return (model, config.Scheduler!);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_runtime_walks_diffusers_grid_and_reproduces_its_images(string name)
    {
        var c = Case(name);
        var (model, scheduler) = Load(c);
        using var _ = model;
        var sampler = new DiffusersSampler(scheduler);
        int steps = (int)c["steps"]!;
        if (scheduler.Unsupported is not null)
        {
            var refused = Assert.Throws<DiffusionArgumentException>(() => sampler.Validate());
            Assert.Contains(scheduler.ClassName, refused.Message);
            return;
        }
        var grid = sampler.OwnGrid(model.Schedule, steps)!;
        // diffusers' Heun lists its second-evaluation points twice; compare the distinct points.
        var timesteps = Distinct(Floats(c["timesteps"]));
        Assert.Equal(timesteps.Length, grid.Length - 1);
        for (int i = 0; i < timesteps.Length; i++) Assert.Equal(timesteps[i], grid[i].Timestep, 1e-3);
        if (c["sigmas"] is JsonArray)
        {
            var sigmas = Distinct(Floats(c["sigmas"]));
            for (int i = 0; i < grid.Length; i++) Assert.Equal(sigmas[i], grid[i].Sigma, sigmas[i] * 1e-4 + 1e-6);
        }
        if (!(bool)c["deterministic"]!) return;
        var xT = Floats(Data["x_T"]);
        var ours = new ImageGenerator(model).Generate(new GenerationRequest { SamplerInstance = sampler, Steps = steps, Count = 2, BatchSize = 2, InitialNoise = xT }).Images;
        var theirs = Floats(c["output"]);
        double worst = ours.Zip(theirs, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= 1e-3, $"{name}: largest difference from diffusers {worst:E2}");
    }

    private static float[] Distinct(float[] values) => values.Where((v, i) => i == 0 || v != values[i - 1]).ToArray();
}
