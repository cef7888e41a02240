namespace Diffusion.Trainer.Training;

/// <summary>
/// What a resumed run may change: where it ends and how it optimises from here on (peak learning rate, cool-down, EMA
/// decay, dropout, precision, flips) — never the network's shape, the data or the objective, which the saved weights
/// belong to. A null keeps the saved value.
/// </summary>
public sealed record ResumeOptions
{
    /// <summary>New target step count (--steps).</summary>
    public int? Steps { get; init; }
    /// <summary>New cool-down length (--decay-steps), counted back from <see cref="Steps"/>.</summary>
    public int? DecaySteps { get; init; }
    /// <summary>New peak learning rate (--lr); the warm-up/cool-down shape stays.</summary>
    public double? LearningRate { get; init; }
    /// <summary>New EMA decay (--ema): the saved average goes on with it.</summary>
    public double? EmaDecay { get; init; }
    /// <summary>New dropout in the residual blocks (--dropout).</summary>
    public double? Dropout { get; init; }
    /// <summary>
    /// New arithmetic of the steps (--precision): the float32 weights and optimizer state go on either way.
    /// </summary>
    public Precision? Precision { get; init; }
    /// <summary>Random horizontal flips on or off (--flip true|false).</summary>
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

    /// <summary>The changes as command-line options, e.g. "--steps 24 --ema 0.9999" (empty for none).</summary>
    public override string ToString() => string.Join(" ", new (string Name, object? Value)[]
        { ("--steps", Steps), ("--decay-steps", DecaySteps), ("--lr", LearningRate), ("--ema", EmaDecay),
            ("--dropout", Dropout), ("--precision", Precision?.Name()),
          ("--flip", Flip switch { true => "true", false => "false", null => null }) }
        .Where(o => o.Value is not null).Select(o => FormattableString.Invariant($"{o.Name} {o.Value}")));
}
