using System.CommandLine;
using Diffusion.Runtime;
using Diffusion.Runtime.Text;

namespace Diffusion.Cli.Commands;

/// <summary>
/// <c>tokenize</c>: the token ids a text-to-image model's text encoder reads for a prompt, one line, space-separated
/// (BOS, the tokens, EOS, the padding); with --tokens the tokens too.
/// </summary>
public static class TokenizeCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var model = new Option<string>("--model", "-m")
        {
            Required = true,
            Description = "A text-to-image folder (its tokenizer/) or a tokenizer folder (vocab.json, merges.txt).",
        };
        var tokens = new Option<bool>("--tokens") { Description = "Also print the tokens, one line, as the vocabulary spells them." };
        var prompt = new Argument<string>("prompt") { Description = "The prompt." };
        var command = new Command("tokenize", "Show the token ids a text-to-image model reads for a prompt.")
        {
            model, tokens, prompt,
        };
        command.SetAction((p, _) => console.Guard(() =>
        {
            var folder = p.GetValue(model)!;
            var tokenizerFolder = Directory.Exists(Path.Combine(folder, "tokenizer")) ? Path.Combine(folder, "tokenizer")
                : folder;
            if (!Directory.Exists(tokenizerFolder))
                throw new DiffusionException($"--model '{folder}' does not exist.");
            var tokenizer = ClipTokenizer.Load(tokenizerFolder);
            var text = p.GetValue(prompt)!;
            if (text.Length > Runtime.Pipelines.TextToImagePipeline.MaxPromptLength)
                throw new DiffusionArgumentException("prompt", $"{text.Length:N0} characters; at most " +
                    $"{Runtime.Pipelines.TextToImagePipeline.MaxPromptLength:N0}.");
            var encoded = tokenizer.Encode(text);
            console.Out.WriteLine(string.Join(' ', encoded.Ids));
            if (p.GetValue(tokens))
                console.Out.WriteLine(string.Join(' ', encoded.Ids.Select(id => tokenizer.Token(id) ?? "?")));
            if (encoded.Truncated is { } cut)
                console.Error.WriteLine($"warning: truncated to {tokenizer.Config.ModelMaxLength} tokens; left out: " +
                    $"\"{Runtime.Imaging.Printable.Of(cut, 200)}\"");
            return Task.FromResult(ExitCodes.Ok);
        }));
        return command;
    }
}
