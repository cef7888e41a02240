namespace Diffusion.Runtime.Conditioning;

/// <summary>
/// The condition c a network is conditioned on besides x_t and t: a value for each of its conditioning inputs by name (class
/// labels, <c>encoder_hidden_states</c>, pooled embeddings, size ids, …), as k-diffusion's <c>extra_args</c>. Samplers
/// never look inside; the model view binds it. Immutable.
/// </summary>
public sealed class Condition
{
    private readonly Dictionary<string, ConditioningTensor> _tensors;

    private Condition(Dictionary<string, ConditioningTensor> tensors) => _tensors = tensors;

    /// <summary>No conditioning (an unconditional model).</summary>
    public static Condition None { get; } = new([]);

    /// <summary>This conditioning with <paramref name="input"/> set to <paramref name="value"/>.</summary>
    public Condition With(string input, ConditioningTensor value)
    {
        ArgumentException.ThrowIfNullOrEmpty(input);
        ArgumentNullException.ThrowIfNull(value);
        return new(new Dictionary<string, ConditioningTensor>(_tensors) { [input] = value });
    }

    /// <summary>The values by input name.</summary>
    public IReadOnlyDictionary<string, ConditioningTensor> Tensors => _tensors;

    /// <summary>The value for <paramref name="input"/>, or null.</summary>
    public ConditioningTensor? this[string input] => _tensors.GetValueOrDefault(input);

    /// <inheritdoc />
    public override string ToString() => _tensors.Count == 0 ? "none"
        : string.Join(", ", _tensors.Select(kv => $"{kv.Key} {kv.Value}"));
}
