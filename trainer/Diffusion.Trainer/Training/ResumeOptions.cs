namespace Diffusion.Trainer.Training;

/// <summary>
/// What a resumed run may change: where it ends and how it optimises from here on (peak learning rate, cool-down, EMA
/// decay, dropout, precision, flips) — never the network's shape, the data or the objective, which the saved weights
/// belong to. A null keeps the saved value.
/// </summary>
public sealed record ResumeOptions
{
    /// <summary>New target step count.</summary>
    public int? Steps { get; init; }
    /// <summary>New cool-down length, counted back from <see cref="Steps"/>.</summary>
    public int? DecaySteps { get; init; }
    /// <summary>New peak learning rate; the warm-up/cool-down shape stays.</summary>
    public double? LearningRate { get; init; }
    /// <summary>New EMA decay: the saved average goes on with it.</summary>
    public double? EmaDecay { get; init; }
    /// <summary>New dropout in the residual blocks.</summary>
    public double? Dropout { get; init; }
    /// <summary>
    /// New arithmetic of the steps: the float32 weights and optimizer state go on either way.
    /// </summary>
    public Precision? Precision { get; init; }
    /// <summary>Random horizontal flips on or off.</summary>
    public bool? Flip { get; init; }

    /// <summary>The saved config with these changes.</summary>
    public TrainConfig ApplyTo(TrainConfig saved) => saved with
    {
        Steps = Steps ?? saved.Steps,
        DecaySteps = DecaySteps ?? saved.DecaySteps,
        LearningRate = LearningRate ?? saved.LearningRate,
        EmaDecay = EmaDecay ?? saved.EmaDecay,
        Net = saved.Net with { Dropout = Dropout ?? saved.Net.Dropout },
        Precision = Precision ?? saved.Precision,
        Flip = Flip ?? saved.Flip,
    };

    /// <summary>The changes made, as the parameter each sets and its value: (Steps, 24), (EmaDecay, 0.9999).</summary>
    public IEnumerable<(string Parameter, string Value)> Changed() =>
        new (string Parameter, object? Value)[]
        {
            (nameof(Steps), Steps), (nameof(DecaySteps), DecaySteps), (nameof(LearningRate), LearningRate),
            (nameof(EmaDecay), EmaDecay), (nameof(Dropout), Dropout), (nameof(Precision), Precision?.Name()),
            (nameof(Flip), Flip switch { true => "true", false => "false", null => null }),
        }
        .Where(o => o.Value is not null)
        .Select(o => (o.Parameter, FormattableString.Invariant($"{o.Value}")));

    /// <summary>The changes, e.g. "Steps 24, EmaDecay 0.9999" (empty for none).</summary>
    public override string ToString() => string.Join(", ", Changed().Select(c => $"{c.Parameter} {c.Value}"));
}
