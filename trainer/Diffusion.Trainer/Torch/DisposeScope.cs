namespace Diffusion.Trainer.Torch;

/// <summary>
/// Collects every tensor created on this thread while it is the innermost scope and frees them when disposed, so a
/// training step leaks nothing (TorchSharp's DisposeScope idea). Tensors that must outlive the scope are moved out.
/// </summary>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static DisposeScope? _current;
    private readonly DisposeScope? _outer;
    private readonly List<Tensor> _tensors = [];
    private bool _disposed;

    private DisposeScope(DisposeScope? outer) => _outer = outer;

    /// <summary>The innermost scope of this thread, if any.</summary>
    public static DisposeScope? Current => _current;

    /// <summary>Opens a scope; tensors created until it is disposed belong to it.</summary>
    public static DisposeScope Enter() => _current = new DisposeScope(_current);

    internal void Register(Tensor t)
    {
        t.Scope = this;
        _tensors.Add(t);
    }

    /// <summary>Hands <paramref name="tensor"/> to the enclosing scope (or to the caller, outside any scope) and returns it.</summary>
    public Tensor MoveToOuter(Tensor tensor)
    {
        if (tensor.Scope == this)
        {
            tensor.Scope = null;
            _outer?.Register(tensor);
        }
        return tensor;
    }

    /// <summary>Takes <paramref name="tensor"/> out of whatever scope holds it: the caller now owns it.</summary>
    public static Tensor Detach(Tensor tensor)
    {
        tensor.Scope = null;
        return tensor;
    }

    /// <summary>Frees every tensor still owned by this scope.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _tensors)
            if (t.Scope == this) t.Dispose();
        _tensors.Clear();
        if (_current == this) _current = _outer;
    }
}

/// <summary>Disables gradient tracking until disposed (torch.no_grad()).</summary>
public readonly struct NoGrad : IDisposable
{
    private readonly bool _previous;

    /// <summary>Disables gradients; disposing restores the previous mode.</summary>
    public NoGrad() => _previous = Native.dt_set_grad_enabled(0) != 0;

    /// <inheritdoc />
    public void Dispose() => Native.dt_set_grad_enabled(_previous ? 1 : 0);
}
