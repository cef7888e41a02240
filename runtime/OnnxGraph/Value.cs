namespace Diffusion.OnnxGraph;

/// <summary>A named tensor in a graph under construction: an input, an initializer or a node output.</summary>
public readonly record struct Value(string Name)
{
    /// <inheritdoc />
    public override string ToString() => Name;
}
