using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Nn;

/// <summary>A registered parameter: the module's slot for a leaf tensor (replaced when the module moves device).</summary>
public sealed class Param(Tensor value)
{
    /// <summary>The tensor.</summary>
    public Tensor Value { get; internal set; } = value;

    /// <summary>The tensor, where a Tensor is expected.</summary>
    public static implicit operator Tensor(Param p) => p.Value;
}

/// <summary>
/// torch.nn.Module: named parameters and children, train/eval mode. Parameters belong to the module (never to a
/// dispose scope) and are freed with it. Subclasses add Forward (libtorch) and Export (ONNX) with the same arithmetic.
/// </summary>
public abstract class Module : IDisposable
{
    private readonly List<(string Name, Param Param)> _parameters = [];
    private readonly List<(string Name, Module Module)> _children = [];

    /// <summary>Dotted path of this module inside the model ("" for the root).</summary>
    public string Name { get; private set; } = "";

    /// <summary>Training mode (dropout on) or evaluation mode.</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Registers a parameter: the module owns it and autograd tracks it.</summary>
    protected Param Parameter(string name, Tensor value)
    {
        DisposeScope.Detach(value);
        value.RequiresGrad = true;
        var param = new Param(value);
        _parameters.Add((name, param));
        return param;
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
        foreach (var (name, param) in _parameters) yield return (Qualify(name), param.Value);
        foreach (var (_, child) in _children)
            foreach (var p in child.NamedParameters()) yield return p;
    }

    /// <summary>Every parameter.</summary>
    public IReadOnlyList<Tensor> Parameters() => NamedParameters().Select(p => p.Tensor).ToList();

    /// <summary>Number of scalar parameters.</summary>
    public long ParameterCount() => NamedParameters().Sum(p => p.Tensor.NumberOfElements);

    /// <summary>Moves every parameter to <paramref name="device"/> (new leaf tensors that keep requiring gradients).</summary>
    public void MoveTo(Device device)
    {
        foreach (var (_, param) in _parameters)
        {
            var old = param.Value;
            if (old.IsCuda == device.IsCuda) continue;
            Tensor moved;
            using (new NoGrad()) moved = DisposeScope.Detach(old.To(device));
            moved.RequiresGrad = true;
            param.Value = moved;
            old.Dispose();
        }
        foreach (var (_, child) in _children) child.MoveTo(device);
    }

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
        foreach (var (_, p) in _parameters) p.Value.Dispose();
        foreach (var (_, c) in _children) c.Dispose();
        GC.SuppressFinalize(this);
    }
}
