using System.Diagnostics;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Data;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Optim;
using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Training;

/// <summary>One training step's numbers, for progress reporting.</summary>
public readonly record struct StepReport(int Step, int Steps, double Loss, double LearningRate, double ImagesPerSecond);

/// <summary>
/// A training run: data, UNet, objective, AdamW with warm-up and clipping, EMA, checkpoints every N steps (atomic),
/// loss log, and periodic sample grids made by the runtime from the just-exported ONNX model. <see cref="Resume"/>
/// restores every piece of state, so a resumed run continues as if it had never stopped.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    private readonly TrainConfig _config;
    private readonly string _outDir;
    private readonly ImageDataset _data;
    private readonly UNet _net;
    private readonly DiffusionObjective _objective;
    private readonly AdamW _optimizer;
    private readonly Ema _ema;
    private readonly Generator _generator;
    private readonly Device _device;
    private readonly List<(int Step, double Loss)> _losses = [];

    /// <summary>Steps completed.</summary>
    public int Step { get; private set; }
    /// <summary>The network being trained.</summary>
    public UNet Net => _net;
    /// <summary>The run's configuration (with the data-derived fields filled in).</summary>
    public TrainConfig Config => _config;
    /// <summary>Loss of every completed step of this process.</summary>
    public IReadOnlyList<(int Step, double Loss)> Losses => _losses;
    /// <summary>Class names of the data.</summary>
    public string[] ClassNames => _data.ClassNames;

    /// <summary>The checkpoint file of a run folder.</summary>
    public static string CheckpointPath(string outDir) => Path.Combine(outDir, "checkpoint.pt");

    private TrainingRun(TrainConfig config, string outDir, ImageDataset data)
    {
        _device = Torch.Device.Parse(config.Device);
        if (_device.IsCuda && !TorchRuntime.CudaAvailable)
            throw new ArgumentException($"--device {config.Device}: this libtorch ({TorchRuntime.Version}) has no usable CUDA. Build the shim against a CUDA libtorch (Torch_DIR=…/share/cmake/Torch) on a machine with a GPU.");
        _outDir = outDir;
        _data = data;
        var net = config.Net with
        {
            InChannels = data.Channels,
            ImageSize = data.Height,
            NumClasses = config.Conditional ? data.NumClasses : 0,
        };
        if (data.Height != data.Width) throw new ArgumentException($"{data.Source}: images are {data.Height}×{data.Width}; the UNet needs square images.");
        _config = config with
        {
            Net = net,
            Diffusion = config.Diffusion with { NumClasses = net.NumClasses, ClassNames = net.NumClasses > 0 ? data.ClassNames : null, SampleSize = [data.Height, data.Width], InChannels = data.Channels },
        };
        _config.Diffusion.Validate("training config");
        TorchRuntime.ManualSeed(config.Seed);
        _generator = new Generator(config.Seed);
        _net = new UNet(net, _generator);
        _net.MoveTo(_device);
        _objective = new DiffusionObjective(_config.Diffusion.CreateSchedule(), _config.Diffusion.Prediction, config.Weighting, config.MinSnrGamma,
            config.LabelDropout, net.NumClasses, _device);
        _optimizer = new AdamW(_net.Parameters(), config.LearningRate, weightDecay: config.WeightDecay);
        _ema = new Ema(_net.Parameters(), config.EmaDecay);
    }

    /// <summary>Starts a new run writing into <paramref name="outDir"/>.</summary>
    public static TrainingRun Start(TrainConfig config, string outDir, ImageDataset? data = null)
    {
        Validate(config);
        Directory.CreateDirectory(outDir);
        data ??= Datasets.Open(config.Data);
        if (config.Limit > 0) data = data.Take(config.Limit);
        return new TrainingRun(config, outDir, data);
    }

    /// <summary>Continues the run saved in <paramref name="outDir"/>; <paramref name="steps"/> (if given) replaces the target step count.</summary>
    public static TrainingRun Resume(string outDir, int? steps = null, ImageDataset? data = null)
    {
        using var checkpoint = Checkpoint.Load(CheckpointPath(outDir));
        var config = checkpoint.Info.Config with { Steps = steps ?? checkpoint.Info.Config.Steps };
        data ??= Datasets.Open(config.Data);
        if (config.Limit > 0) data = data.Take(config.Limit);
        var run = new TrainingRun(config, outDir, data);
        try
        {
            run.Restore(checkpoint);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    private void Restore(Checkpoint.Loaded checkpoint)
    {
        var parameters = _net.Parameters();
        int n = parameters.Count;
        if (checkpoint.TensorCount != 4 * n)
            throw new InvalidDataException($"Checkpoint in '{_outDir}' holds {checkpoint.TensorCount} tensors; this network needs {4 * n}. Was it written by a different configuration?");
        using var noGrad = new NoGrad();
        using var scope = DisposeScope.Enter();
        var weights = checkpoint.Group(0, n);
        var ema = checkpoint.Group(1, n);
        var optimizer = _optimizer.State.ToArray();
        for (int i = 0; i < n; i++)
        {
            parameters[i].CopyFrom(weights[i].To(_device));
            _ema.Shadow[i].CopyFrom(ema[i].To(_device));
        }
        var moments = checkpoint.Group(2, n).ToArray().Concat(checkpoint.Group(3, n).ToArray()).ToArray();
        for (int i = 0; i < optimizer.Length; i++) optimizer[i].CopyFrom(moments[i].To(_device));
        _generator.State = checkpoint.DataGenerator;
        using (var defaultGenerator = Generator.Default()) defaultGenerator.State = checkpoint.DefaultGenerator;
        Step = checkpoint.Info.Step;
        _optimizer.Step = Step;
    }

    private static void Validate(TrainConfig c)
    {
        if (c.Steps <= 0) throw new ArgumentException($"--steps must be positive, got {c.Steps}.");
        if (c.Batch <= 0) throw new ArgumentException($"--batch must be positive, got {c.Batch}.");
        if (!(c.LearningRate > 0)) throw new ArgumentException($"--lr must be positive, got {c.LearningRate}.");
        if (c.EmaDecay is < 0 or >= 1) throw new ArgumentException($"--ema must lie in [0, 1), got {c.EmaDecay}.");
        if (c.LabelDropout is < 0 or >= 1) throw new ArgumentException($"--label-dropout must lie in [0, 1), got {c.LabelDropout}.");
        if (c.CheckpointEvery <= 0) throw new ArgumentException($"--checkpoint-every must be positive, got {c.CheckpointEvery}.");
    }

    /// <summary>The learning rate at step <paramref name="step"/> (1-based): linear warm-up, then constant.</summary>
    public double LearningRateAt(int step) => _config.LearningRate * Math.Min(1.0, step / (double)Math.Max(1, _config.WarmupSteps));

    /// <summary>Trains until <see cref="TrainConfig.Steps"/>, checkpointing and sampling on schedule.</summary>
    public void Run(IProgress<StepReport>? progress = null, CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        int startStep = Step;
        while (Step < _config.Steps)
        {
            cancellation.ThrowIfCancellationRequested();
            double loss = TrainStep();
            double rate = (Step - startStep) * (double)_config.Batch / watch.Elapsed.TotalSeconds;
            progress?.Report(new StepReport(Step, _config.Steps, loss, _optimizer.LearningRate, rate));
            if (Step % _config.CheckpointEvery == 0 || Step == _config.Steps) SaveCheckpoint(loss);
            if (_config.SampleEvery > 0 && (Step % _config.SampleEvery == 0 || Step == _config.Steps)) WriteSamples();
        }
    }

    /// <summary>One optimizer step on a fresh batch; returns the loss.</summary>
    public double TrainStep()
    {
        using var scope = DisposeScope.Enter();
        _net.Train();
        int b = _config.Batch;
        var indices = Tensor.RandInt(_data.Count, [b], _generator).ToLongArray();
        var flips = Tensor.Rand([b], _generator).ToFloatArray().Select(u => _config.Flip && u < 0.5f).ToArray();
        var (images, labels) = _data.Batch(indices, flips);
        var x0 = images.To(_device);
        var y = _net.Config.NumClasses > 0 ? labels?.To(_device) : null;
        _net.ZeroGrad();
        var loss = _objective.Loss(_net, x0, y, _generator);
        loss.Backward();
        if (_config.GradClip > 0) AdamW.ClipGradNorm(_net.Parameters(), _config.GradClip);
        Step++;
        _optimizer.LearningRate = LearningRateAt(Step);
        _optimizer.StepOnce();
        _ema.Update(Step);
        double value = loss.Item();
        if (!double.IsFinite(value)) throw new InvalidOperationException($"The loss became {value} at step {Step}; lower --lr or enable --grad-clip.");
        _losses.Add((Step, value));
        return value;
    }

    /// <summary>Writes checkpoint.pt and appends to loss.csv.</summary>
    public void SaveCheckpoint(double lastLoss)
    {
        byte[] defaultState;
        using (var g = Generator.Default()) defaultState = g.State;
        Checkpoint.Save(CheckpointPath(_outDir), new CheckpointInfo(Step, _config, _data.ClassNames, lastLoss),
            _net.Parameters(), _ema.Shadow, _optimizer.State, _generator.State, defaultState);
        var log = Path.Combine(_outDir, "loss.csv");
        var lines = _losses.Where(l => l.Step > LoggedUpTo(log)).Select(l => $"{l.Step},{l.Loss:R}");
        if (!File.Exists(log)) File.WriteAllText(log, "step,loss\n");
        File.AppendAllLines(log, lines);
    }

    private static int LoggedUpTo(string log)
    {
        if (!File.Exists(log)) return 0;
        var last = File.ReadLines(log).Skip(1).LastOrDefault();
        return last is null ? 0 : int.Parse(last.Split(',')[0]);
    }

    /// <summary>The EMA (or raw) weights as an ONNX model following the model contract.</summary>
    public byte[] ExportOnnx(bool ema = true)
    {
        if (!ema) return UNetExporter.ToOnnx(_net, _config.Diffusion);
        using var init = new Generator(0);
        using var copy = new UNet(_net.Config, init);
        _ema.CopyTo(copy);
        return UNetExporter.ToOnnx(copy, _config.Diffusion);
    }

    /// <summary>Exports the EMA model to model.onnx and samples a grid through the runtime (DPM-Solver++(2M), 20 steps, Karras σ).</summary>
    public string WriteSamples()
    {
        var modelPath = Path.Combine(_outDir, "model.onnx");
        var bytes = ExportOnnx();
        AtomicFile.Write(modelPath, s => s.Write(bytes));
        using var model = DiffusionModel.Load(modelPath);
        int count = model.NumClasses > 0 ? 2 * model.NumClasses : 16;
        var result = new ImageGenerator(model).Generate(new GenerationRequest
        {
            Sampler = "dpm++2m", Steps = 20, KarrasSigmas = true, Count = count, BatchSize = count, Seed = 0,
            ClassLabels = model.NumClasses > 0 ? Enumerable.Range(0, count).Select(i => i % model.NumClasses).ToArray() : [],
            Guidance = model.NumClasses > 0 ? 2 : 1,
        });
        var grid = Path.Combine(_outDir, $"samples-{Step:000000}.png");
        Png.Save(grid, ImageGrid.Tile(result.Images, result.Count, result.Channels, result.Height, result.Width, columns: model.NumClasses > 0 ? model.NumClasses : 0));
        return grid;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _net.Dispose();
        _objective.Dispose();
        _optimizer.Dispose();
        _ema.Dispose();
        _generator.Dispose();
    }
}
