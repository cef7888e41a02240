using System.Diagnostics;
using Diffusion.Distributed;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Onnx;
using Diffusion.Trainer.Data;
using Diffusion.Trainer.Distributed;
using Diffusion.Trainer.Export;
using Diffusion.Trainer.Nn;
using Diffusion.Trainer.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Diffusion.Trainer.Training;

/// <summary>One training step's numbers, for progress reporting.</summary>
public readonly record struct StepReport(int Step, int Steps, double Loss, double LearningRate, double ImagesPerSecond);

/// <summary>
/// A training run: data, UNet, objective, TorchSharp's AdamW with warm-up and gradient-norm clipping, EMA, checkpoints
/// every N steps (atomic), loss log, and periodic sample grids made by the runtime from the just-exported ONNX model.
/// <see cref="Resume"/> restores every piece of state, so a resumed run continues as if it had never stopped.
/// Data-parallel over an <see cref="ICommunicator"/> of N ranks: rank 0's state (fresh or resumed) is broadcast, every
/// rank draws the global batch's indices, flips, t, ε and label dropout from the same generator and takes its share of
/// the rows, gradients (and the loss) are averaged by <see cref="GradientAverager"/> before clipping, and only rank 0
/// writes files — so N ranks follow the one-process run (the same batch, the same updates) up to rounding.
/// </summary>
public sealed class TrainingRun : IDisposable
{
    private readonly TrainConfig _config;
    private readonly string _outDir;
    private readonly ImageDataset _data;
    private readonly UNet _net;
    private readonly DiffusionObjective _objective;
    private readonly AdamW _optimizer;
    private readonly Ema<UNet> _ema;
    private readonly Generator _generator;
    private readonly Device _device;
    private readonly ICommunicator _world;
    private readonly GradientAverager _averager;
    private readonly List<(int Step, double Loss)> _losses = [];
    private int _loggedUpTo = -1;

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
    /// <summary>The ranks this run spans.</summary>
    public ICommunicator World => _world;
    /// <summary>Gradient averaging over the ranks (bytes per step, time in allreduce).</summary>
    public GradientAverager Averager => _averager;
    /// <summary>
    /// When set, <see cref="Run"/> ends (with a checkpoint) at the first step after this much training time — on every
    /// rank at the same step.
    /// </summary>
    public TimeSpan? TimeLimit { get; set; }
    /// <summary>When set, <see cref="TrainStep"/> records its phases' wall time here.</summary>
    public StepProfile? Profile { get; set; }

    private RunFolderLock? _lock; // rank 0's, for the run's life

    /// <summary>The data it trains on.</summary>
    public ImageDataset Data => _data;

    /// <summary>The checkpoint file of a run folder.</summary>
    public static string CheckpointPath(string outDir) => Path.Combine(outDir, "checkpoint.pt");

    private TrainingRun(TrainConfig config, string outDir, ImageDataset data, ICommunicator world)
    {
        AgreeOnData(world, data);
        _world = world;
        _device = TorchSetup.ParseDevice(config.Device);
        _outDir = outDir;
        _data = data;
        var net = config.Net with
        {
            InChannels = data.Channels,
            ImageSize = data.Height,
            NumClasses = config.Conditional ? data.NumClasses : 0,
        };
        if (data.Height != data.Width)
            throw new DiffusionArgumentException(nameof(TrainConfig.Data),
                $"{data.Source}: images are {data.Height}×{data.Width}; the UNet needs square images.");
        _config = config with
        {
            Net = net,
            Diffusion = config.Diffusion with
            {
                NumClasses = net.NumClasses, ClassNames = net.NumClasses > 0 ? data.ClassNames : null,
                SampleSize = [data.Height, data.Width], InChannels = data.Channels,
            },
        };
        _config.Diffusion.Validate("training config");
        CheckMemory(_config, world.Size);
        random.manual_seed((long)config.Seed);  // initial weights and dropout draw from the default generator
        _generator = new Generator(config.Seed); // batches, t, noise and label dropout from this one
        _net = new UNet(net) { ComputeType = config.Precision.ScalarType() };
        _net.to(_device);
        _objective = new DiffusionObjective(_config.Diffusion.CreateSchedule(), _config.Diffusion.Prediction,
            config.Weighting, config.MinSnrGamma,
            config.LabelDropout, net.NumClasses, _device);
        _optimizer = optim.AdamW(_net.parameters(), config.LearningRate, weight_decay: config.WeightDecay);
        var average = new UNet(net);
        average.to(_device);
        _ema = new Ema<UNet>(_net, average, config.EmaDecay);
        _averager = new GradientAverager(world, _net.parameters());
    }

    /// <summary>
    /// Starts a new run writing into <paramref name="outDir"/> (on every rank of <paramref name="world"/>, each with
    /// the same config).
    /// </summary>
    public static TrainingRun Start(TrainConfig config, string outDir, ImageDataset? data = null,
        ICommunicator? world = null)
    {
        world ??= new SingleProcess();
        config.Validate();
        AgreeOnConfig(world, config, "");
        data ??= Datasets.Open(config.Data, config.ImageSize);
        if (config.Limit > 0) data = data.Take(config.Limit);
        var run = new TrainingRun(config, outDir, data, world);
        try
        {
            if (world.Rank == 0)
            {
                Directory.CreateDirectory(outDir);
                run._lock = RunFolderLock.Acquire(outDir);
                Checkpoint.RemoveStaleTemporaries(CheckpointPath(outDir));
            }
            return run.Synchronized();
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Continues the run saved in <paramref name="outDir"/>, with the <paramref name="changes"/> a resumed run may
    /// make. Rank 0 reads the checkpoint and hands config and state to the others, whatever their number was before.
    /// </summary>
    public static TrainingRun Resume(string outDir, ResumeOptions? changes = null, ImageDataset? data = null,
        ICommunicator? world = null)
    {
        world ??= new SingleProcess();
        changes ??= new ResumeOptions();
        var path = CheckpointPath(outDir);
        TrainConfig? config = null;
        if (world.Rank == 0)
        {
            Checkpoint.RemoveStaleTemporaries(path);
            var saved = Checkpoint.ReadInfo(path);
            config = changes.ApplyTo(saved.Config);
            config.Validate();
        }
        config = AgreeOnConfig(world, config, changes.ToString());
        data ??= Datasets.Open(config.Data, config.ImageSize);
        if (config.Limit > 0) data = data.Take(config.Limit);
        var run = new TrainingRun(config, outDir, data, world);
        try
        {
            if (world.Rank == 0)
            {
                run._lock = RunFolderLock.Acquire(outDir);
                Checkpoint.Read(path, (info, reader) => run.Restore(info, reader));
                RepairLog(LossLogPath(outDir));
            }
            return run.Synchronized();
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Every rank's config must be rank 0's (a fresh run) — or, resuming, is rank 0's checkpoint's, with the same
    /// <paramref name="request"/> (the options that apply to a resumed run) on every rank. A mismatch fails on every
    /// rank before the first step.
    /// </summary>
    private static TrainConfig AgreeOnConfig(ICommunicator world, TrainConfig? mine, string request)
    {
        if (world.Size == 1) return mine!;
        static byte[] Json(TrainConfig config, string request) =>
            System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new RankOptions(config, request));
        var root = world.Broadcast(world.Rank == 0 ? Json(mine!, request) : null);
        var (rootConfig, rootRequest) = System.Text.Json.JsonSerializer.Deserialize<RankOptions>(root)!;
        bool differs = request != rootRequest
            || (mine is not null && !root.AsSpan().SequenceEqual(Json(mine, request)));
        if (world.AllreduceMax(differs ? 1 : 0) > 0)
            throw new DiffusionException(differs
                ? $"Rank {world.Rank} was started with other training options than rank 0 " +
                    $"({(request != rootRequest ? $"'{request}' vs '{rootRequest}'" : "see the config each rank prints")}); start every rank with the same command line."
                : "Another rank was started with other training options than rank 0; start every rank " +
                    "with the same command line.");
        return rootConfig;
    }

    /// <summary>
    /// The most a CPU training step's activations may take: half the memory this process may use (the machine's, or
    /// its container's limit); the rest holds the data, the weights with their gradients, AdamW's and the EMA's state.
    /// </summary>
    public static long MemoryBudget => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;

    /// <summary>
    /// Refuses a run whose training step would keep more activations than <see cref="MemoryBudget"/> (estimated from
    /// the network's shape fitted to the data: <see cref="UNetConfig.ActivationsPerImage"/>) before anything is
    /// allocated, rather than failing in libtorch's allocator minutes later.
    /// </summary>
    private static void CheckMemory(TrainConfig config, int ranks)
    {
        if (!config.Device.StartsWith("cpu", StringComparison.OrdinalIgnoreCase)) return; // a GPU has its own memory
        var net = config.Net;
        net.Validate(); // the shape's sizes bounded first
        int perRank = (config.Batch + ranks - 1) / ranks;
        double bytes = perRank * net.ActivationsPerImage() * (config.Precision == Precision.BFloat16 ? 2 : 4);
        if (bytes <= MemoryBudget) return;
        static string GiB(double b) => $"{b / (1L << 30):0.0} GiB";
        throw new DiffusionArgumentException(nameof(TrainConfig.Batch), $"a step of {perRank} image(s) of "
            + $"{net.InChannels}×{net.ImageSize}×{net.ImageSize} through this UNet (width {net.BaseChannels}, "
            + $"multipliers {string.Join(",", net.ChannelMults)}) keeps about {GiB(bytes)} of activations for the "
            + $"backward pass, over the budget of {GiB(MemoryBudget)} (half the {GiB(2.0 * MemoryBudget)} this process "
            + "may use); use a smaller batch, smaller images (--size) or a narrower network.");
    }

    /// <summary>
    /// Every rank must train on the same images (each draws its shard of a batch by index): the same command line can
    /// still read other files on another host, so each rank's data is compared with rank 0's by its SHA-256.
    /// </summary>
    private static void AgreeOnData(ICommunicator world, ImageDataset data)
    {
        if (world.Size == 1) return;
        var mine = Fingerprint(data);
        var root = world.Broadcast(world.Rank == 0 ? mine : null);
        bool differs = !root.AsSpan().SequenceEqual(mine);
        if (world.AllreduceMax(differs ? 1 : 0) == 0) return;
        static string Describe(byte[] f) =>
            $"{BitConverter.ToInt32(f, 0)} images of {BitConverter.ToInt32(f, 4)}×{BitConverter.ToInt32(f, 8)}×"
            + $"{BitConverter.ToInt32(f, 12)}, SHA-256 {Convert.ToHexStringLower(f, 16, 6)}…";
        throw new DiffusionException(differs
            ? $"Rank {world.Rank} read other data than rank 0 from '{data.Source}' ({Describe(mine)}; rank 0: "
                + $"{Describe(root)}); every rank must read the same images: give each host the same copy."
            : "Another rank read other data than rank 0; every rank must read the same images.");
    }

    /// <summary>Count, channels, height and width (int32 each), then the SHA-256 of the labels and pixels.</summary>
    private static byte[] Fingerprint(ImageDataset data)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(
            System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var label in data.Labels ?? []) hash.AppendData(BitConverter.GetBytes(label));
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes(string.Join("\n", data.ClassNames)));
        hash.AppendData(data.Pixels);
        return [.. BitConverter.GetBytes(data.Count), .. BitConverter.GetBytes(data.Channels),
            .. BitConverter.GetBytes(data.Height), .. BitConverter.GetBytes(data.Width), .. hash.GetHashAndReset()];
    }

    /// <summary>What one rank was started with: the config, and the options that apply to a resumed run.</summary>
    private sealed record RankOptions(TrainConfig Config, string Request);

    /// <summary>This run with rank 0's step, weights, EMA, AdamW and generator states on every rank.</summary>
    private TrainingRun Synchronized()
    {
        if (_world.Size == 1) return this;
        byte[]? state = null;
        if (_world.Rank == 0)
        {
            using var buffer = new MemoryStream();
            using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                writer.Write(Step);
                WriteState(writer);
            }
            state = buffer.ToArray();
        }
        state = _world.Broadcast(state);
        if (_world.Rank != 0)
        {
            using var reader = new BinaryReader(new MemoryStream(state));
            Step = reader.ReadInt32();
            ReadState(reader, _net, _ema.Average, _optimizer, _generator, restoreDefaultGenerator: true);
            _loggedUpTo = Step;
        }
        return this;
    }

    /// <summary>
    /// The payload of a checkpoint: weights, EMA weights, AdamW state, both generators' states, in this order.
    /// </summary>
    private void WriteState(BinaryWriter writer)
    {
        _net.save(writer);
        _ema.Average.save(writer);
        _optimizer.save_state_dict(writer);
        using var scope = NewDisposeScope();
        _generator.get_state().Save(writer);
        random.get_rng_state().Save(writer);
    }

    private void Restore(CheckpointInfo info, BinaryReader reader)
    {
        ReadState(reader, _net, _ema.Average, _optimizer, _generator, restoreDefaultGenerator: true);
        Step = info.Step;
        _loggedUpTo = Step;
    }

    /// <summary>
    /// Reads what <see cref="WriteState"/> wrote into modules, optimizer and generator of the same configuration.
    /// </summary>
    private static void ReadState(BinaryReader reader, UNet net, UNet average, AdamW optimizer, Generator generator,
        bool restoreDefaultGenerator)
    {
        net.load(reader, strict: true);
        average.load(reader, strict: true);
        optimizer.load_state_dict(reader);
        using var scope = NewDisposeScope();
        generator.set_state(TensorExtensionMethods.Load(reader));
        var defaultState = TensorExtensionMethods.Load(reader);
        if (restoreDefaultGenerator) random.set_rng_state(defaultState);
    }

    /// <summary>The learning rate at step <paramref name="step"/> (1-based).</summary>
    public double LearningRateAt(int step) => LearningRate(_config, step);

    /// <summary>
    /// Linear warm-up over <see cref="TrainConfig.WarmupSteps"/>, then constant, then with
    /// <see cref="TrainConfig.DecaySteps"/> a linear cool-down whose last step (<see cref="TrainConfig.Steps"/>) runs
    /// at 1/DecaySteps of the peak.
    /// </summary>
    public static double LearningRate(TrainConfig c, int step)
    {
        double warm = Math.Min(1.0, step / (double)Math.Max(1, c.WarmupSteps));
        double cool = c.DecaySteps > 0 ? Math.Clamp((c.Steps - step + 1) / (double)c.DecaySteps, 0, 1) : 1.0;
        return c.LearningRate * Math.Min(warm, cool);
    }

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
            progress?.Report(new StepReport(Step, _config.Steps, loss, LearningRateAt(Step), rate));
            // Ranks' clocks differ: they stop together when any has run out of time.
            bool outOfTime = TimeLimit is { } limit && _world.AllreduceMax(watch.Elapsed >= limit ? 1 : 0) > 0;
            if (_world.Rank != 0) { if (outOfTime) break; continue; } // rank 0 alone writes the run's files
            if (Step % _config.CheckpointEvery == 0 || Step == _config.Steps || outOfTime) SaveCheckpoint(loss);
            if (outOfTime) break;
            if (_config.SampleEvery > 0 && (Step % _config.SampleEvery == 0 || Step == _config.Steps)) WriteSamples();
        }
    }

    /// <summary>
    /// One optimizer step on a fresh batch (this rank's rows of it); returns the loss of the whole batch.
    /// </summary>
    public double TrainStep()
    {
        using var scope = NewDisposeScope();
        Profile?.Begin();
        _net.train();
        int b = _config.Batch;
        var indices = randint(_data.Count, [b], generator: _generator).data<long>().ToArray();
        var flips = rand([b], generator: _generator).data<float>().ToArray().Select(u => _config.Flip
            && u < 0.5f).ToArray();
        // This rank's rows of the global batch (all of them in one process).
        int from = (int)((long)b * _world.Rank / _world.Size), to = (int)((long)b * (_world.Rank + 1) / _world.Size);
        if (to == from) throw new DiffusionArgumentException(nameof(TrainConfig.Batch),
                $"{b} gives rank {_world.Rank} of {_world.Size} no images; use a batch of at least {_world.Size}.");
        var (images, labels) = _data.Batch(indices[from..to], flips[from..to]);
        var x0 = images.to(_device);
        var y = _net.Config.NumClasses > 0 ? labels?.to(_device) : null;
        _optimizer.zero_grad();
        Profile?.Mark("data");
        Tensor loss;
        // The forward pass's intermediate tensors are released as soon as it ends: the autograd graph keeps what
        // backward needs and frees it node by node, as in PyTorch, instead of every activation living to the end.
        using (var forward = NewDisposeScope())
        {
            loss = _objective.Loss(_net, x0, y, _generator, new BatchShard(from, b));
            // Averaging over the ranks weighs each rank's mean by its share of the batch: the mean over the whole
            // batch.
            if (to - from != b) loss = loss * ((to - from) * (double)_world.Size / b);
            loss = forward.MoveToOuter(loss);
        }
        Profile?.Mark("forward");
        loss.backward();
        Profile?.Mark("backward");
        double value = _averager.Average(loss.item<float>());
        Profile?.Mark("allreduce");
        if (_config.GradClip > 0) nn.utils.clip_grad_norm_(_net.parameters(), _config.GradClip);
        Profile?.Mark("clip");
        Step++;
        foreach (var group in _optimizer.ParamGroups) group.LearningRate = LearningRateAt(Step);
        _optimizer.step();
        Profile?.Mark("adamw");
        _ema.Update(Step);
        Profile?.Mark("ema");
        if (!double.IsFinite(value)) throw new DiffusionException(nameof(TrainConfig.LearningRate),
                $"the loss became {value} at step {Step}; lower the learning rate or enable gradient clipping.");
        _losses.Add((Step, value));
        Profile?.End();
        return value;
    }

    /// <summary>Writes checkpoint.pt and appends the steps since the last checkpoint to loss.csv.</summary>
    public void SaveCheckpoint(double lastLoss)
    {
        Checkpoint.Save(CheckpointPath(_outDir), new CheckpointInfo(Step, _config, _data.ClassNames, lastLoss),
            WriteState);
        var log = LossLogPath(_outDir);
        if (_loggedUpTo < 0) _loggedUpTo = File.Exists(log) ? LastLoggedStep(log) : 0;
        if (!File.Exists(log) || new FileInfo(log).Length == 0) File.WriteAllText(log, "step,loss\n");
        File.AppendAllLines(log, _losses.Where(l => l.Step > _loggedUpTo).Select(l => $"{l.Step},{l.Loss:R}"));
        _loggedUpTo = Step;
    }

    private static string LossLogPath(string outDir) => Path.Combine(outDir, "loss.csv");

    /// <summary>
    /// Cuts a log that a killed run left mid-line back to its last whole line, so that appending continues it cleanly.
    /// </summary>
    private static void RepairLog(string log)
    {
        if (!File.Exists(log)) return;
        using var file = new FileStream(log, FileMode.Open, FileAccess.ReadWrite);
        long end = file.Length;
        var one = new byte[1];
        while (end > 0)
        {
            file.Position = end - 1;
            file.ReadExactly(one);
            if (one[0] == (byte)'\n') break;
            end--;
        }
        if (end < file.Length) file.SetLength(end);
    }

    private static int LastLoggedStep(string log)
    {
        var last = File.ReadLines(log).Skip(1).LastOrDefault(l => l.Length > 0);
        return last is not null && int.TryParse(last.Split(',')[0], out var step) ? step : 0;
    }

    /// <summary>The EMA (or raw) weights as an ONNX model following the model contract.</summary>
    public byte[] ExportOnnx(bool ema = true) => UNetExporter.ToOnnx(ema ? _ema.Average : _net, _config.Diffusion);

    /// <summary>
    /// Exports the EMA model to model.onnx and samples a grid through the runtime (DPM-Solver++(2M), 20 steps, Karras
    /// σ).
    /// </summary>
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
            ClassLabels = model.NumClasses > 0 ? Enumerable.Range(0, count).Select(i => i % model.NumClasses).ToArray()
                : [],
            Guidance = model.NumClasses > 0 ? 2 : 1,
        });
        var grid = Path.Combine(_outDir, $"samples-{Step:000000}.png");
        ImageFile.Save(grid,
            ImageGrid.Tile(result.Images, result.Count, result.Channels, result.Height, result.Width,
                columns: model.NumClasses > 0 ? model.NumClasses : 0));
        return grid;
    }

    /// <summary>
    /// The network stored in a checkpoint (its EMA weights, or the raw ones), with the config to export it with.
    /// </summary>
    public static (UNet Net, DiffusionConfig Config) LoadNetwork(string path, bool ema)
    {
        var info = Checkpoint.ReadInfo(path);
        UNet net = new(info.Config.Net), average = new(info.Config.Net);
        try
        {
            using var optimizer = optim.AdamW(net.parameters());
            using var generator = new Generator(0);
            Checkpoint.Read(path, (_, reader) =>
                ReadState(reader, net, average, optimizer, generator, restoreDefaultGenerator: false));
            var kept = ema ? average : net;
            (ema ? net : average).Dispose();
            kept.eval();
            return (kept, info.Config.Diffusion);
        }
        catch
        {
            net.Dispose();
            average.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _lock?.Dispose();
        _net.Dispose();
        _objective.Dispose();
        _optimizer.Dispose();
        _ema.Dispose();
        _generator.Dispose();
    }
}
