namespace Diffusion.Trainer;

/// <summary>Entry point of the trainer (./diffusion train | export | bench-train).</summary>
public static class Program
{
    /// <summary>Runs the trainer CLI.</summary>
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("diffusion-trainer: commands are being built; see the open trainer issue.");
        return args.Length == 0 ? 0 : 2;
    }
}
