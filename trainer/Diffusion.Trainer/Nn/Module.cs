using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Nn;

/// <summary>
/// torch.nn.Module: named parameters and children, train/eval mode. Parameters belong to the module (never to a
/// dispose scope) and are freed with it. Subclasses add Forward (libtorch) and Export (ONNX) with the same arithmetic.
/// </summary>
public abstract class Module : IDisposable
{
    private readonly List<(string Name, Tensor Tensor)> _parameters = [];
    private readonly List<(string Name, Module Module)> _children = [];

    /// <summary>Dotted path of this module inside the model ("" for the root).</summary>
    public string Name { get; private set; } = "";

    /// <summary>Training mode (dropout on) or evaluation mode.</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Registers a parameter: the module owns it and autograd tracks it.</summary>
    protected Tensor Parameter(string name, Tensor value)
    {
        DisposeScope.Detach(value);
        value.RequiresGrad = true;
        _parameters.Add((name, value));
        return value;
    }

    /// <summary>Registers a child module under <paramref name="name"/>.</summary>
    protected T Child<T>(string name, T module) where T : Module
    {
        _children.Add((name, module));
        module.Rename(Qualify(name));
        return module;
    }

    private void Rename(string name)
    {
        Name = name;
        foreach (var (childName, child) in _children) child.Rename(Qualify(childName));
    }

    /// <summary>The full name of a parameter or child of this module.</summary>
    protected string Qualify(string name) => Name.Length == 0 ? name : $"{Name}.{name}";

    /// <summary>Every parameter of this module and its children, with dotted names, in registration order.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> NamedParameters()
    {
        foreach (var (name, tensor) in _parameters) yield return (Qualify(name), tensor);
        foreach (var (_, child) in _children)
            foreach (var p in child.NamedParameters()) yield return p;
    }

    /// <summary>Every parameter.</summary>
    public IReadOnlyList<Tensor> Parameters() => NamedParameters().Select(p => p.Tensor).ToList();

    /// <summary>Number of scalar parameters.</summary>
    public long ParameterCount() => NamedParameters().Sum(p => p.Tensor.NumberOfElements);

    /// <summary>Switches training mode on or off, recursively.</summary>
    public void Train(bool on = true)
    {
        Training = on;
        foreach (var (_, child) in _children) child.Train(on);
    }

    /// <summary>Evaluation mode.</summary>
    public void Eval() => Train(false);

    /// <summary>Drops every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters()) p.ZeroGrad();
    }

    /// <summary>Frees the parameters.</summary>
    public void Dispose()
    {
        foreach (var (_, t) in _parameters) t.Dispose();
        foreach (var (_, c) in _children) c.Dispose();
        GC.SuppressFinalize(this);
    }
}
