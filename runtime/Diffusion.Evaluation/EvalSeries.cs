using System.Globalization;

namespace Diffusion.Evaluation;

/// <summary>The mean and sample standard deviation of <see cref="Count"/> measurements of one quantity.</summary>
public readonly record struct Spread(double Mean, double StandardDeviation, int Count)
{
    /// <summary>
    /// The spread of <paramref name="values"/> (standard deviation with n − 1; 0 for a single value).
    /// </summary>
    public static Spread Of(IEnumerable<double> values)
    {
        var v = values.ToArray();
        if (v.Length == 0) throw new ArgumentException("A spread needs at least one value.", nameof(values));
        double mean = v.Average();
        double sd = v.Length == 1 ? 0 : Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return new Spread(mean, sd, v.Length);
    }

    /// <summary>"mean ± standard deviation", in <paramref name="format"/>.</summary>
    public string ToString(string format) =>
        $"{Mean.ToString(format, CultureInfo.InvariantCulture)} " +
            $"± {StandardDeviation.ToString(format, CultureInfo.InvariantCulture)}";

    /// <inheritdoc/>
    public override string ToString() => ToString("G3");
}

/// <summary>
/// One configuration evaluated at several sampling seeds (the same reference images each time), each run with its
/// own disjoint sample of the floor set when there are enough: the spread between runs is how far one run's FD, KID or
/// class accuracy can move by the luck of the initial noise alone — the yardstick for calling two models different.
/// </summary>
public sealed record EvalSeries(IReadOnlyList<EvalResult> Runs)
{
    /// <summary>Fréchet distance over the runs.</summary>
    public Spread FrechetDistance => Spread.Of(Runs.Select(r => r.FrechetDistance));

    /// <summary>KID estimate over the runs (each run also carries its own jackknife standard error).</summary>
    public Spread Kid => Spread.Of(Runs.Select(r => r.Kid.Value));

    /// <summary>Class accuracy over the runs (NaN for an unconditional model).</summary>
    public Spread ClassAccuracy => Spread.Of(Runs.Select(r => r.ClassAccuracy));

    /// <summary>Each class's accuracy, averaged over the runs.</summary>
    public double[] PerClassAccuracy =>
        Enumerable.Range(0, Runs[0].PerClassAccuracy.Length).Select(c =>
            Runs.Average(r => r.PerClassAccuracy[c])).ToArray();

    /// <summary>The floor's Fréchet distance over the runs that had a floor sample; null when none had.</summary>
    public Spread? FloorFrechetDistance => OverFloors(d => d.FrechetDistance);

    /// <summary>The floor's KID over the runs that had a floor sample; null when none had.</summary>
    public Spread? FloorKid => OverFloors(d => d.Kid.Value);

    private Spread? OverFloors(Func<SetDistance, double> metric) =>
        Runs.Any(r => r.Floor is not null)
            ? Spread.Of(Runs.Where(r => r.Floor is not null).Select(r => metric(r.Floor!))) : null;
}
