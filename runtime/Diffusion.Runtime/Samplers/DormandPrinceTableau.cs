namespace Diffusion.Runtime.Samplers;

/// <summary>
/// The Butcher tableau of Dormand &amp; Prince's RK5(4) (scipy's RK45) and its step-size rule: the one definition
/// that the rk45 sampler and the probability-flow likelihood both integrate with. Seven stages, first-same-as-last:
/// the last stage's slope is the slope at the accepted point.
/// </summary>
public static class DormandPrinceTableau
{
    /// <summary>Stages per step.</summary>
    public const int Stages = 7;

    private static readonly double[] C = [0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1];
    private static readonly double[][] A =
    [
        [],
        [1.0 / 5],
        [3.0 / 40, 9.0 / 40],
        [44.0 / 45, -56.0 / 15, 32.0 / 9],
        [19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729],
        [9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656],
        [35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84],
    ];
    // Fifth-order weights (A[6]) minus the embedded fourth-order ones.
    private static readonly double[] E =
        [35.0 / 384 - 5179.0 / 57600, 0, 500.0 / 1113 - 7571.0 / 16695, 125.0 / 192 - 393.0 / 640,
         -2187.0 / 6784 + 92097.0 / 339200, 11.0 / 84 - 187.0 / 2100, -1.0 / 40];

    /// <summary>c_j: where in the step stage j evaluates the slope (fraction of h).</summary>
    public static double Node(int stage) => C[stage];

    /// <summary>
    /// a_jm: the weight of stage m's slope in stage j's point (m &lt; j; stage 6's are the solution's).
    /// </summary>
    public static double Coefficient(int stage, int m) => A[stage][m];

    /// <summary>The weight of stage m's slope in the local error estimate (fifth order minus fourth).</summary>
    public static double ErrorWeight(int m) => E[m];

    /// <summary>
    /// The factor the step size is multiplied by after a step whose scaled error norm is <paramref name="errorNorm"/>
    /// (≤ 1: accepted): 0.9·norm^(−1/5), kept within [0.2, 5], and never growing after a rejection.
    /// </summary>
    public static double StepFactor(double errorNorm) =>
        errorNorm == 0 ? 5 : Math.Clamp(0.9 * Math.Pow(errorNorm, -0.2), 0.2, errorNorm <= 1 ? 5 : 1);
}
