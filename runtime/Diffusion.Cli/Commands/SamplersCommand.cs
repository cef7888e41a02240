using System.CommandLine;
using Diffusion.Runtime.Samplers;
using Spectre.Console;

namespace Diffusion.Cli.Commands;

/// <summary><c>samplers</c>: lists the sampler names.</summary>
public static class SamplersCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliConsole console)
    {
        var command = new Command("samplers", "List the samplers.");
        command.SetAction((_, _) => console.Guard(() =>
        {
            var table = new Table().AddColumns("name", "what it implements", "also known as");
            foreach (var info in SamplerRegistry.All)
                table.AddPlainRow(info.Name, info.Description, string.Join(", ", info.Aliases));
            console.Ansi.Write(table);
            return Task.FromResult(0);
        }));
        return command;
    }
}
