namespace Diffusion.Trainer.Tests;

/// <summary>
/// The test classes that seed or draw from libtorch's process-wide default generator (initial weights, dropout):
/// one collection, so that xUnit runs them one after another — a class re-seeding it in parallel would change another's
/// draws mid-run (a resumed run must repeat its dropout masks exactly).
/// </summary>
[CollectionDefinition(Name)]
public sealed class DefaultGenerator
{
    /// <summary>The collection's name.</summary>
    public const string Name = "libtorch's default generator";
}
