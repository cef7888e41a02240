using System.Text;
using System.Text.Json;
using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Training;

/// <summary>What a checkpoint holds besides tensors.</summary>
public sealed record CheckpointInfo(int Step, TrainConfig Config, string[] ClassNames, double LastLoss);

/// <summary>
/// A training state in one libtorch archive: weights, EMA weights, AdamW moments, both generators' states and a JSON
/// header (step, config, class names). Written to a temporary name and renamed into place.
/// </summary>
public static class Checkpoint
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false, IncludeFields = false };

    /// <summary>Writes the state to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, CheckpointInfo info, IReadOnlyList<Tensor> weights, IReadOnlyList<Tensor> ema, IEnumerable<Tensor> optimizer, byte[] dataGenerator, byte[] defaultGenerator)
    {
        using var scope = DisposeScope.Enter();
        var header = Tensor.FromBytes(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(info, Json)));
        var tensors = new List<Tensor> { header, Tensor.FromBytes(dataGenerator), Tensor.FromBytes(defaultGenerator) };
        tensors.AddRange(weights);
        tensors.AddRange(ema);
        tensors.AddRange(optimizer);
        var full = Path.GetFullPath(path);
        var tmp = $"{full}.tmp-{Environment.ProcessId}";
        try
        {
            TorchRuntime.Save(tensors, tmp);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>A loaded checkpoint; the caller disposes it.</summary>
    public sealed class Loaded(CheckpointInfo info, Tensor[] tensors) : IDisposable
    {
        /// <summary>Step, config, class names.</summary>
        public CheckpointInfo Info { get; } = info;
        /// <summary>The data generator's state.</summary>
        public byte[] DataGenerator => tensors[1].ToBytes(1);
        /// <summary>libtorch's default generator's state.</summary>
        public byte[] DefaultGenerator => tensors[2].ToBytes(1);
        /// <summary>Tensors after the header: weights, EMA, m, v (each group in parameter order).</summary>
        public ReadOnlySpan<Tensor> Group(int index, int count) => tensors.AsSpan(3 + index * count, count);
        /// <summary>Number of stored tensors after the header.</summary>
        public int TensorCount => tensors.Length - 3;
        /// <inheritdoc />
        public void Dispose()
        {
            foreach (var t in tensors) t.Dispose();
        }
    }

    /// <summary>The network stored in a checkpoint (its EMA weights, or the raw ones), with the config to export it with.</summary>
    public static (Nn.UNet Net, Runtime.Onnx.DiffusionConfig Config) LoadNetwork(string path, bool ema)
    {
        using var checkpoint = Load(path);
        var info = checkpoint.Info;
        using var init = new Generator(0);
        var net = new Nn.UNet(info.Config.Net, init);
        var parameters = net.Parameters();
        if (checkpoint.TensorCount != 4 * parameters.Count)
        {
            net.Dispose();
            throw new InvalidDataException($"Checkpoint '{path}' holds {checkpoint.TensorCount} tensors; its network needs {4 * parameters.Count}.");
        }
        var source = checkpoint.Group(ema ? 1 : 0, parameters.Count);
        using (new NoGrad())
            for (int i = 0; i < parameters.Count; i++) parameters[i].CopyFrom(source[i]);
        return (net, info.Config.Diffusion);
    }

    /// <summary>Reads a checkpoint; a missing or broken file is a clear error.</summary>
    public static Loaded Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        Tensor[] tensors;
        try { tensors = TorchRuntime.Load(path); }
        catch (TorchException e) { throw new InvalidDataException($"Checkpoint '{path}' could not be read by libtorch: {e.Message.Split('\n')[0]}", e); }
        try
        {
            if (tensors.Length < 3 || tensors[0].DType != DType.UInt8) throw new InvalidDataException($"'{path}' is not a Diffusion for .NET checkpoint.");
            var info = JsonSerializer.Deserialize<CheckpointInfo>(Encoding.UTF8.GetString(tensors[0].ToBytes(1)), Json)
                       ?? throw new InvalidDataException($"Checkpoint '{path}' has an empty header.");
            return new Loaded(info, tensors);
        }
        catch
        {
            foreach (var t in tensors) t.Dispose();
            throw;
        }
    }
}
