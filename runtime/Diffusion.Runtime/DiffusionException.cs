namespace Diffusion.Runtime;

/// <summary>A problem with the user's input (a model file, an option, an image) explained in words: what, where, what was expected.</summary>
public sealed class DiffusionException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public DiffusionException(string message) : base(message) { }

    /// <summary>Creates the exception with its message and cause.</summary>
    public DiffusionException(string message, Exception inner) : base(message, inner) { }
}
