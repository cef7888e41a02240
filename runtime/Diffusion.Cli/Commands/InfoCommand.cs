using System.CommandLine;
using Diffusion.Runtime.Onnx;
using Diffusion.Runtime.Pipelines;
using Spectre.Console;

namespace Diffusion.Cli.Commands;

/// <summary><c>info --model PATH</c>: inputs, outputs and config of a model.</summary>
public static class InfoCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new ModelArguments();
        var command = new Command("info", "Show a model's inputs, outputs and diffusion config.");
        model.AddTo(command);
        command.SetAction((p, _) => console.Guard(() =>
        {
            if (ModelArguments.IsTextToImage(model.PathOf(p)))
            {
                using var pipeline = model.LoadPipeline(p);
                Components(console, pipeline);
                Describe(console, pipeline.Unet);
                return Task.FromResult(0);
            }
            using var m = model.Load(p);
            Describe(console, m);
            return Task.FromResult(0);
        }));
        return command;
    }

    /// <summary>A text-to-image folder's components, each with its file, ports and own config.</summary>
    private static void Components(CliConsole console, TextToImagePipeline pipeline)
    {
        static string Ports(OnnxComponent c) =>
            string.Join("; ", c.Inputs.Select(kv => $"{kv.Key} {DiffusionModel.Describe(kv.Value)}")) + " → " +
            string.Join("; ", c.Outputs.Select(kv => $"{kv.Key} {DiffusionModel.Describe(kv.Value)}"));
        var t = pipeline.Tokenizer;
        var table = new Table().AddColumns("component", "what", "details");
        table.AddPlainRow("pipeline", pipeline.Index.ClassName,
            $"{pipeline.Index.Folder}; {pipeline.Width}×{pipeline.Height} by default");
        table.AddPlainRow("tokenizer", "CLIP byte-level BPE", $"{t.VocabularySize} tokens, pads to " +
            $"{t.Config.ModelMaxLength} with '{t.Config.PadToken}' (id {t.PadId}); {t.Config.Source}");
        table.AddPlainRow("text_encoder", Ports(pipeline.TextEncoder),
            $"hidden size {pipeline.TextEncoder.HiddenSize}; {pipeline.TextEncoder.Settings.Device}");
        table.AddPlainRow("unet", "see below", $"{pipeline.Unet.Source}; {pipeline.Unet.Settings.Device}");
        table.AddPlainRow("scheduler", pipeline.Unet.Config.Scheduler?.ClassName ?? "none named",
            $"{pipeline.Unet.ConfigSource}; the default sampler walks it as diffusers does");
        var vae = pipeline.VaeDecoder.Config;
        table.AddPlainRow("vae_decoder", Ports(pipeline.VaeDecoder), $"scaling_factor {vae.ScalingFactor}, " +
            $"{vae.LatentChannels} latent channels, ×{vae.DownsamplingFactor}; {vae.Source}");
        table.AddPlainRow("vae_encoder", pipeline.VaeEncoder is { } e ? Ports(e) : "none (no img2img)", "");
        console.Ansi.Write(table);
    }

    private static void Describe(CliConsole console, DiffusionModel m)
    {
        var io = new Table().AddColumns("", "name", "type", "role");
        foreach (var (name, meta) in m.Session.InputMetadata)
            io.AddPlainRow("input", name, DiffusionModel.Describe(meta), Role(m, name));
        foreach (var (name, meta) in m.Session.OutputMetadata)
            io.AddPlainRow("output", name, DiffusionModel.Describe(meta), name != m.OutputName ? ""
                : m.Config.LearnsVariance ? "model_output, then v (learned variance)" : "model_output");
        console.Ansi.Write(io);
        var c = m.Config;
        var config = new Table().AddColumns("config", "value");
        config.AddPlainRow("source", m.ConfigSource);
        config.AddPlainRow("image", $"{m.Channels}×{m.Height}×{m.Width}" + (m.ConcatChannels == 0 ? ""
            : $"; the sample input reads {m.ConcatChannels} more channels after them (an inpainting UNet's mask and " +
                "masked-image latents)"));
        config.AddPlainRow("prediction_type", c.PredictionType);
        config.AddPlainRow("variance_type", c.LearnsVariance
            ? "learned_range: Σ = exp(f log β + (1 − f) log β̃), f = (v + 1)/2, from the network's v" : c.VarianceType);
        config.AddPlainRow("schedule",
            $"{c.BetaSchedule}, T = {c.NumTrainTimesteps}, β ∈ " +
                $"[{c.BetaStart}, {c.BetaEnd}]{(c.RescaleBetasZeroSnr ? ", zero terminal SNR" : "")}");
        config.AddPlainRow("σ range", $"{m.Schedule.SigmaMin:0.####} … {m.Schedule.SigmaMax:0.##}");
        config.AddPlainRow("default grid", c.UseKarrasSigmas ? "Karras σ (use_karras_sigmas)"
            : $"timesteps, {c.TimestepSpacing} spacing");
        config.AddPlainRow("clip_sample / thresholding", $"{c.ClipSample} / {c.Thresholding}");
        config.AddPlainRow("classes", m.NumClasses == 0 ? "unconditional"
            : $"{m.NumClasses}: {string.Join(", ", c.ClassNames ?? [])} " +
                $"({(m.HasNullClass ? $"null label {m.NumClasses}" : "no null label: no unconditional sampling or guidance")})");
        // the exporter's own account of the file, e.g. which layers an int8 export quantized and on what data
        if (m.Session.ModelMetadata.Description is { Length: > 0 } description)
            config.AddPlainRow("description", description);
        config.AddPlainRow("ONNX Runtime", $"{OrtLibrary.Version} ({OrtLibrary.Path}), {m.Settings.Device}");
        console.Ansi.Write(config);
    }

    private static string Role(DiffusionModel m, string name) =>
        name == m.SampleInput ? "sample" : name == m.TimestepInput
            ? $"timestep ({(m.TimestepLayout == TimestepLayout.PerImage ? "one per image" : "one per batch")}" +
                $"{(m.FloatTimesteps ? "" : ", rounded")})"
            : name == m.ClassLabelsInput ? "class_labels" : "conditioning";
}
