namespace Diffusion.Runtime;

/// <summary>A problem with the user's input (a model file, an option, an image) explained in words: what, where, what was expected.</summary>
public class DiffusionException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public DiffusionException(string message) : base(message) { }

    /// <summary>Creates the exception with its message and cause.</summary>
    public DiffusionException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// An argument of a call is invalid in itself (a negative count, an unknown sampler name, too many steps), as opposed
/// to a file or model that cannot be used; a command line reports it as a usage error.
/// </summary>
public sealed class DiffusionArgumentException : DiffusionException
{
    /// <summary>Creates the exception with its message.</summary>
    public DiffusionArgumentException(string message) : base(message) { }

    /// <summary>Creates the exception with its message and cause.</summary>
    public DiffusionArgumentException(string message, Exception inner) : base(message, inner) { }
}
