namespace Diffusion.Runtime;

/// <summary>
/// A problem with the user's input (a model file, an option, an image) explained in words: what, where, what was
/// expected. When it concerns one argument of a call, <see cref="Parameter"/> names it as data (a property name such as
/// <c>Steps</c>), so that a command line can report its own flag and a web API its own field without parsing prose.
/// </summary>
public class DiffusionException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public DiffusionException(string message) : base(message) => Problem = message;

    /// <summary>Creates the exception with its message and cause.</summary>
    public DiffusionException(string message, Exception inner) : base(message, inner) => Problem = message;

    /// <summary>
    /// Creates the exception about <paramref name="parameter"/>; <paramref name="problem"/> does not name it.
    /// </summary>
    public DiffusionException(string parameter, string problem, Exception? inner = null)
        : base($"{parameter}: {problem}", inner)
    {
        Parameter = parameter;
        Problem = problem;
    }

    /// <summary>The argument the problem concerns (the library's property name, e.g. <c>Steps</c>), or null.</summary>
    public string? Parameter { get; }

    /// <summary>The message without the parameter's name (the whole message when there is none).</summary>
    public string Problem { get; }
}

/// <summary>
/// An argument of a call is invalid in itself (a negative count, an unknown sampler name, too many steps), as opposed
/// to a file or model that cannot be used; a command line reports it as a usage error.
/// </summary>
public sealed class DiffusionArgumentException : DiffusionException
{
    /// <summary>
    /// Creates the exception about <paramref name="parameter"/>; <paramref name="problem"/> does not name it.
    /// </summary>
    public DiffusionArgumentException(string parameter, string problem, Exception? inner = null)
        : base(parameter, problem, inner) { }

    /// <summary>The argument that is invalid (the library's property name, e.g. <c>Steps</c>).</summary>
    public new string Parameter => base.Parameter!;
}
