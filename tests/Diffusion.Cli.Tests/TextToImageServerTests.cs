using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Diffusion.ReferenceModels;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Cli.Tests;

/// <summary>
/// The web sample serving a text-to-image folder (the closed-form one): /info says so and lists the prompt fields,
/// /generate takes prompts and sizes, and what does not apply to such a model is refused by field.
/// </summary>
public sealed class TextToImageServerTests : IClassFixture<TextToImageServerTests.Server>
{
    private readonly Server _web;

    public TextToImageServerTests(Server web) => _web = web;

    /// <summary>The web app on a closed-form text-to-image folder.</summary>
    public sealed class Server() : WebServer("--Model", LatentGaussianFolder.Write(Path.Combine(
        TestFolders.Create("web-sd"), "model")));

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body),
        System.Text.Encoding.UTF8, "application/json");

    [Fact]
    public async Task Info_shows_a_text_model_and_its_prompt_fields()
    {
        var info = await _web.Http.GetFromJsonAsync<JsonElement>("info");
        Assert.True(info.GetProperty("textToImage").GetBoolean());
        Assert.Empty(info.GetProperty("classes").EnumerateArray());
        var fields = info.GetProperty("fields");
        foreach (var field in new[] { "prompt", "negativePrompt", "width", "height", "guidance" })
            Assert.True(fields.TryGetProperty(field, out _), field);
        Assert.False(fields.TryGetProperty("class", out _));
        Assert.Equal(8, fields.GetProperty("width").GetProperty("multipleOf").GetInt32());
        Assert.Equal(7.5, fields.GetProperty("guidance").GetProperty("default").GetDouble());
        var page = await _web.Http.GetStringAsync("/");
        Assert.Contains("id=\"prompt\"", page);
    }

    [Fact]
    public async Task Generate_takes_prompts_and_sizes_and_refuses_what_does_not_apply_by_field()
    {
        using var ok = await _web.Http.PostAsync("generate", Json(new
        {
            prompt = "a photo of a red cat", negativePrompt = "blurry", steps = 6, width = 128, height = 64, count = 2,
        }));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var png = ImageFile.Decode(await ok.Content.ReadAsByteArrayAsync(), "response");
        // a grid of two 128×64 images with the grid's thin borders, not enlarged (a pixel model's default is 4×)
        Assert.InRange(png.Height, 64, 72);
        Assert.InRange(png.Width, 256, 272);
        foreach (var (body, field) in new (object, string)[]
        {
            (new { prompt = "cat", width = 100 }, "width"),
            (new { prompt = "cat", height = 2048 }, "height"),
            (new { prompt = new string('a', 3000) }, "prompt"),
            (new { @class = "bag" }, "class"),
            (new { prompt = "cat", count = 9 }, "count"),
        })
        {
            using var response = await _web.Http.PostAsync("generate", Json(body));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
            Assert.Equal(field, JsonDocument.Parse(text).RootElement.GetProperty("field").GetString());
        }
    }
}
