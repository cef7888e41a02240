namespace Diffusion.Trainer.Torch;

/// <summary>torch.nn.functional: the network operations.</summary>
public static class Functional
{
    /// <summary>2-D convolution, square kernel, equal stride and padding on both axes.</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, long stride = 1, long padding = 0) =>
        Tensor.From(Native.dt_conv2d(x.H, weight.H, bias?.H ?? IntPtr.Zero, stride, padding, out var t), t);
    /// <summary>x·Wᵀ + b.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias) =>
        Tensor.From(Native.dt_linear(x.H, weight.H, bias?.H ?? IntPtr.Zero, out var t), t);
    /// <summary>Group normalization with per-channel affine.</summary>
    public static Tensor GroupNorm(Tensor x, long groups, Tensor? weight, Tensor? bias, double eps = 1e-5) =>
        Tensor.From(Native.dt_group_norm(x.H, groups, weight?.H ?? IntPtr.Zero, bias?.H ?? IntPtr.Zero, eps, out var t), t);
    /// <summary>Nearest-neighbour upsampling by an integer factor.</summary>
    public static Tensor UpsampleNearest(Tensor x, long scale) => Tensor.From(Native.dt_upsample_nearest2d(x.H, scale, out var t), t);
    /// <summary>Average pooling with kernel = stride.</summary>
    public static Tensor AvgPool2d(Tensor x, long kernel) => Tensor.From(Native.dt_avg_pool2d(x.H, kernel, out var t), t);
    /// <summary>Dropout (identity when not training or p = 0).</summary>
    public static Tensor Dropout(Tensor x, double p, bool training) => Tensor.From(Native.dt_dropout(x.H, p, training ? 1 : 0, out var t), t);
    /// <summary>Mean squared error.</summary>
    public static Tensor MseLoss(Tensor a, Tensor b) => Tensor.From(Native.dt_mse_loss(a.H, b.H, out var t), t);
    /// <summary>Cross-entropy of logits against int64 targets.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target)
    {
        using var scope = DisposeScope.Enter();
        var logp = logits.LogSoftmax(1);
        return scope.MoveToOuter(Tensor.From(Native.dt_nll_loss(logp.H, target.H, out var t), t));
    }
}

/// <summary>A libtorch random generator; its state goes into checkpoints.</summary>
public sealed class Generator : IDisposable
{
    internal IntPtr H { get; }

    /// <summary>A CPU generator seeded with <paramref name="seed"/>.</summary>
    public Generator(ulong seed)
    {
        Native.Check(Native.dt_generator_new(seed, out var g));
        H = g;
    }

    private Generator(IntPtr handle) => H = handle;

    /// <summary>libtorch's default CPU generator (dropout draws from it); disposing releases only this handle.</summary>
    public static Generator Default()
    {
        Native.Check(Native.dt_default_generator(out var g));
        return new Generator(g);
    }

    /// <summary>The full state, as bytes.</summary>
    public byte[] State
    {
        get
        {
            Native.Check(Native.dt_generator_get_state(H, out var s));
            using var t = new Tensor(s);
            DisposeScope.Detach(t);
            return t.ToBytes(1);
        }
        set
        {
            using var t = DisposeScope.Detach(Tensor.FromBytes(value));
            Native.Check(Native.dt_generator_set_state(H, t.H));
        }
    }

    /// <inheritdoc />
    public void Dispose() => Native.dt_generator_free(H);
}

/// <summary>Process-wide libtorch settings.</summary>
public static class TorchRuntime
{
    /// <summary>libtorch's version string.</summary>
    public static string Version => System.Runtime.InteropServices.Marshal.PtrToStringUTF8(Native.dt_version()) ?? "?";
    /// <summary>Whether CUDA is usable.</summary>
    public static bool CudaAvailable => Native.dt_cuda_available() != 0;
    /// <summary>Intra-op threads.</summary>
    public static int Threads
    {
        get => Native.dt_get_num_threads();
        set => Native.Check(Native.dt_set_num_threads(value));
    }
    /// <summary>Seeds libtorch's default generator.</summary>
    public static void ManualSeed(ulong seed) => Native.Check(Native.dt_manual_seed(seed));

    /// <summary>Saves tensors in libtorch's archive format.</summary>
    public static unsafe void Save(IReadOnlyList<Tensor> tensors, string path)
    {
        var handles = tensors.Select(t => t.H).ToArray();
        fixed (IntPtr* p = handles) Native.Check(Native.dt_save(p, handles.Length, path));
    }

    /// <summary>Loads tensors saved by <see cref="Save"/>; the caller owns them.</summary>
    public static unsafe Tensor[] Load(string path)
    {
        Native.Check(Native.dt_load(path, out var array, out int n));
        try
        {
            var result = new Tensor[n];
            for (int i = 0; i < n; i++) result[i] = new Tensor(((IntPtr*)array)[i]);
            return result;
        }
        finally
        {
            Native.dt_free_array(array);
        }
    }
}
