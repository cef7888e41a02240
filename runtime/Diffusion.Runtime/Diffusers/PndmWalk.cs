using Diffusion.Runtime.Samplers;
using Diffusion.Runtime.Schedules;

namespace Diffusion.Runtime.Diffusers;

/// <summary>diffusers' PNDMScheduler, for <see cref="DiffusersSampler"/>.</summary>
internal static class PndmWalk
{
    /// <summary>
    /// The timesteps PNDM evaluates the network at, in order, for grid timesteps <paramref name="ascending"/>: the
    /// pseudo Runge–Kutta ones (4 per step of the last 3, at t and t − stride/2) and then the PLMS ones.
    /// </summary>
    private static (int[] Prk, int[] Plms) Timesteps(int[] ascending, int stride, bool skipPrkSteps)
    {
        int n = ascending.Length;
        int[] prk = [], plms;
        if (skipPrkSteps)
            plms = [.. ascending[..^1], .. n > 1 ? [ascending[^2]] : (int[])[], ascending[^1]];
        else
        {
            var top = ascending[Math.Max(0, n - 4)..];
            var pairs = top.SelectMany(t => new[] { t, t + stride / 2 }).ToArray();
            prk = pairs[..^1].SelectMany(t => new[] { t, t }).ToArray()[1..^1];
            plms = ascending[..Math.Max(0, n - 3)];
        }
        Array.Reverse(prk);
        Array.Reverse(plms);
        return (prk, plms);
    }

    /// <summary>Network evaluations of <paramref name="steps"/> PNDM steps: steps + 1 with skip_prk_steps (the first
    /// step is evaluated twice), else steps + 9 from 4 steps on (4 per pseudo Runge–Kutta step instead of 1).</summary>
    public static int Evaluations(DiffusersScheduler scheduler, int steps)
    {
        var (prk, plms) = Timesteps(Enumerable.Range(0, steps).ToArray(), 2, scheduler.SkipPrkSteps);
        return prk.Length + plms.Length;
    }

    /// <summary>
    /// The most steps whose <see cref="Evaluations"/> fit in <paramref name="evaluations"/> (at least 1).
    /// </summary>
    public static int StepsForBudget(DiffusersScheduler scheduler, int evaluations)
    {
        int steps = 1;
        while (steps < evaluations && Evaluations(scheduler, steps + 1) <= evaluations) steps++;
        return steps;
    }

    /// <summary>
    /// diffusers' PNDMScheduler (Liu et al. 2022), its state machine followed call by call: the network's outputs are
    /// combined — 3 pseudo Runge–Kutta steps of 4 evaluations first (at t and t − ⌊T/n⌋/2), or with skip_prk_steps
    /// (Stable Diffusion's PLMS) a first step evaluated twice and averaged — then Adams–Bashforth on up to 4 past
    /// outputs; each combination moves x from t to t′ by PNDM's transfer, x′ = √(ᾱ′/ᾱ) x − (ᾱ′ − ᾱ) e/(ᾱ√(1 − ᾱ′) +
    /// √(ᾱ(1 − ᾱ)ᾱ′)), with e the combined ε (a v-prediction combination is turned into ε with the x it is applied to,
    /// as diffusers does). A constraint (inpainting) is applied after every combination, at the level of the next
    /// timestep evaluated — the grid's last level after the last —, as diffusers' inpainting pipeline blends after
    /// every call of the scheduler's step.
    /// </summary>
    public static void Sample(SamplingContext c, DiffusersScheduler scheduler)
    {
        int n = c.Steps, stride = c.Model.Schedule.TrainTimesteps / c.ScheduleSteps;
        var ascending = Enumerable.Range(0, n).Select(i => (int)Math.Round(c.Grid[n - 1 - i].Timestep)).ToArray();
        var (prk, plms) = Timesteps(ascending, stride, scheduler.SkipPrkSteps);
        new Walk(c, scheduler, stride, prk).Run([.. prk, .. plms]);
    }

    /// <summary>The scheduler's state between network calls: x, the last four outputs, the PRK sums.</summary>
    private sealed class Walk(SamplingContext c, DiffusersScheduler scheduler, int stride, int[] prk)
    {
        private readonly NoiseSchedule _schedule = c.Model.Schedule;
        private readonly bool _velocity = c.Model.Config.Prediction == Onnx.PredictionType.VPrediction;
        private readonly float[] _x = c.X, _eps = c.Buffer(0), _x0 = c.Buffer(1), _combined = c.Buffer(2),
            _current = c.Buffer(3), _accumulated = c.Buffer(4);
        private readonly List<float[]> _ets = new(4);
        private readonly Queue<float[]> _spare = new(Enumerable.Range(5, 5).Select(c.Buffer));
        private bool _haveCurrent;

        public void Run(int[] timesteps)
        {
            for (int counter = 0; counter < timesteps.Length; counter++)
            {
                int t = timesteps[counter];
                var level = NoiseLevel.At(_schedule, t);
                c.Model.Predict(_x, level, _eps, _x0);
                var output = _spare.Count > 0 ? _spare.Dequeue() : _ets[0];
                // The network's own output: ε, or v = √ᾱ ε − √(1 − ᾱ) x̂₀.
                if (_velocity) Vec.Axpby(output, level.Alpha, _eps, -level.SigmaVp, _x0);
                else _eps.CopyTo(output, 0);
                if (counter < prk.Length) RungeKutta(counter, t, output);
                else LinearMultistep(counter, t, output);
                c.Constraint?.Apply(c, _x, counter + 1 < timesteps.Length
                    ? NoiseLevel.At(_schedule, timesteps[counter + 1]) : c.Grid[^1], SampleSpace.Vp);
                c.Progress(Math.Min(c.Steps - 1, counter * c.Steps / timesteps.Length));
            }
        }

        /// <summary>
        /// A pseudo Runge–Kutta evaluation: the 4 outputs of a step weighted 1/6, 1/3, 1/3, 1/6, each moving x from
        /// the step's start to t or t − stride/2.
        /// </summary>
        private void RungeKutta(int counter, int t, float[] output)
        {
            int previous = t - (counter % 2 == 1 ? 0 : stride / 2);
            int from = prk[counter / 4 * 4];
            switch (counter % 4)
            {
                case 0:
                    Vec.Scale(_accumulated, 1 / 6.0, output);
                    Keep(output);
                    _x.CopyTo(_current, 0);
                    _haveCurrent = true;
                    output.CopyTo(_combined, 0);
                    break;
                case 1 or 2:
                    Vec.AddScaled(_accumulated, 1 / 3.0, output);
                    output.CopyTo(_combined, 0);
                    Release(output);
                    break;
                default:
                    Vec.Axpby(_combined, 1, _accumulated, 1 / 6.0, output);
                    Release(output);
                    break;
            }
            Transfer(_haveCurrent ? _current : _x, from, previous, _combined);
        }

        /// <summary>
        /// A PLMS evaluation: Adams–Bashforth on up to 4 past outputs (with skip_prk_steps, the first step evaluated
        /// twice and the two outputs averaged).
        /// </summary>
        private void LinearMultistep(int counter, int t, float[] output)
        {
            int from = t, previous = t - stride;
            if (counter != 1) Keep(output);
            else (from, previous) = (t + stride, t);
            var ets = _ets;
            if (ets.Count == 1 && counter == 0)
            {
                ets[^1].CopyTo(_combined, 0);
                _x.CopyTo(_current, 0);
            }
            else if (ets.Count == 1 && counter == 1)
            {
                Vec.Axpby(_combined, 0.5, output, 0.5, ets[^1]);
                Release(output);
                _current.CopyTo(_x, 0);
            }
            else if (ets.Count == 2) Vec.Axpby(_combined, 1.5, ets[^1], -0.5, ets[^2]);
            else if (ets.Count == 3)
            {
                Vec.Axpby(_combined, 23 / 12.0, ets[^1], -16 / 12.0, ets[^2]);
                Vec.AddScaled(_combined, 5 / 12.0, ets[^3]);
            }
            else
            {
                Vec.Axpby(_combined, 55 / 24.0, ets[^1], -59 / 24.0, ets[^2]);
                Vec.AddScaled(_combined, 37 / 24.0, ets[^3]);
                Vec.AddScaled(_combined, -9 / 24.0, ets[^4]);
            }
            Transfer(_x, from, previous, _combined);
        }

        private double AlphaBar(int t) =>
            t >= 0 ? _schedule.AlphasCumprod[t] : scheduler.SetAlphaToOne ? 1 : _schedule.AlphasCumprod[0];

        /// <summary>PNDM's transfer of <paramref name="sample"/> from t to <paramref name="previous"/>.</summary>
        private void Transfer(float[] sample, int t, int previous, float[] output)
        {
            double a = AlphaBar(t), ap = AlphaBar(previous);
            if (_velocity) Vec.Axpby(output, Math.Sqrt(a), output, Math.Sqrt(1 - a), sample); // v → ε with this sample
            double denominator = a * Math.Sqrt(1 - ap) + Math.Sqrt(a * (1 - a) * ap);
            Vec.Axpby(_x, Math.Sqrt(ap / a), sample, -(ap - a) / denominator, output);
        }

        // _ets holds the last four outputs; older buffers return to the spare queue.
        private void Keep(float[] output)
        {
            _ets.Add(output);
            if (_ets.Count > 4)
            {
                _spare.Enqueue(_ets[0]);
                _ets.RemoveAt(0);
            }
        }

        private void Release(float[] output)
        {
            if (!_ets.Contains(output)) _spare.Enqueue(output);
        }
    }
}
