namespace Diffusion.Trainer.Torch;

/// <summary>The tensor operations, one line each over the shim.</summary>
public sealed partial class Tensor
{
    private Tensor Binary(int op, Tensor b) => From(Native.dt_binary(op, H, b.H, out var t), t);
    private Tensor Scalar(int op, double s) => From(Native.dt_binary_scalar(op, H, s, out var t), t);
    private Tensor Unary(int op) => From(Native.dt_unary(op, H, out var t), t);

    /// <summary>a + b.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => a.Binary(0, b);
    /// <summary>a − b.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => a.Binary(1, b);
    /// <summary>a · b.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => a.Binary(2, b);
    /// <summary>a / b.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => a.Binary(3, b);
    /// <summary>a + s.</summary>
    public static Tensor operator +(Tensor a, double s) => a.Scalar(0, s);
    /// <summary>a − s.</summary>
    public static Tensor operator -(Tensor a, double s) => a.Scalar(1, s);
    /// <summary>a · s.</summary>
    public static Tensor operator *(Tensor a, double s) => a.Scalar(2, s);
    /// <summary>s · a.</summary>
    public static Tensor operator *(double s, Tensor a) => a.Scalar(2, s);
    /// <summary>a / s.</summary>
    public static Tensor operator /(Tensor a, double s) => a.Scalar(3, s);
    /// <summary>s − a.</summary>
    public static Tensor operator -(double s, Tensor a) => a.Scalar(7, s);
    /// <summary>−a.</summary>
    public static Tensor operator -(Tensor a) => a.Unary(0);

    /// <summary>aᵇ elementwise.</summary>
    public Tensor Pow(double exponent) => Scalar(4, exponent);
    /// <summary>max(a, s).</summary>
    public Tensor ClampMin(double s) => Scalar(5, s);
    /// <summary>min(a, s).</summary>
    public Tensor ClampMax(double s) => Scalar(6, s);
    /// <summary>Elementwise maximum.</summary>
    public Tensor Maximum(Tensor b) => Binary(5, b);
    /// <summary>eˣ.</summary>
    public Tensor Exp() => Unary(1);
    /// <summary>ln x.</summary>
    public Tensor Log() => Unary(2);
    /// <summary>√x.</summary>
    public Tensor Sqrt() => Unary(3);
    /// <summary>sin x.</summary>
    public Tensor Sin() => Unary(4);
    /// <summary>cos x.</summary>
    public Tensor Cos() => Unary(5);
    /// <summary>x·σ(x).</summary>
    public Tensor Silu() => Unary(6);
    /// <summary>max(x, 0).</summary>
    public Tensor Relu() => Unary(7);
    /// <summary>σ(x).</summary>
    public Tensor Sigmoid() => Unary(8);
    /// <summary>|x|.</summary>
    public Tensor Abs() => Unary(10);
    /// <summary>1/√x.</summary>
    public Tensor Rsqrt() => Unary(11);
    /// <summary>⌊x⌋.</summary>
    public Tensor Floor() => Unary(12);
    /// <summary>x².</summary>
    public Tensor Square() => Unary(13);
    /// <summary>Mask of x &lt; s.</summary>
    public Tensor Lt(double s) => From(Native.dt_compare_scalar(0, H, s, out var t), t);
    /// <summary>condition ? a : b.</summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b) => From(Native.dt_where(condition.H, a.H, b.H, out var t), t);

    /// <summary>Reshape (−1 infers one dimension).</summary>
    public unsafe Tensor Reshape(params long[] shape)
    {
        fixed (long* s = shape) return From(Native.dt_reshape(H, s, shape.Length, out var t), t);
    }
    /// <summary>Reorders dimensions.</summary>
    public unsafe Tensor Permute(params long[] order)
    {
        fixed (long* s = order) return From(Native.dt_permute(H, s, order.Length, out var t), t);
    }
    /// <summary>Swaps two dimensions.</summary>
    public Tensor Transpose(long d0, long d1) => From(Native.dt_transpose(H, d0, d1, out var t), t);
    /// <summary>Concatenates along <paramref name="dim"/>.</summary>
    public static unsafe Tensor Cat(IReadOnlyList<Tensor> tensors, long dim)
    {
        var handles = new IntPtr[tensors.Count];
        for (int i = 0; i < handles.Length; i++) handles[i] = tensors[i].H;
        fixed (IntPtr* p = handles) return From(Native.dt_cat(p, handles.Length, dim, out var t), t);
    }
    /// <summary>A slice [start, start + length) of dimension <paramref name="dim"/>.</summary>
    public Tensor Narrow(long dim, long start, long length) => From(Native.dt_narrow(H, dim, start, length, out var t), t);
    /// <summary>Rows of <paramref name="dim"/> picked by an int64 index tensor.</summary>
    public Tensor IndexSelect(long dim, Tensor index) => From(Native.dt_index_select(H, dim, index.H, out var t), t);
    /// <summary>Reverses dimension <paramref name="dim"/>.</summary>
    public Tensor Flip(long dim) => From(Native.dt_flip(H, dim, out var t), t);
    /// <summary>A contiguous copy if needed.</summary>
    public Tensor Contiguous() => From(Native.dt_contiguous(H, out var t), t);

    /// <summary>Σ of all elements.</summary>
    public Tensor Sum() => From(Native.dt_sum(H, out var t), t);
    /// <summary>Mean of all elements.</summary>
    public Tensor Mean() => From(Native.dt_mean(H, out var t), t);
    /// <summary>Mean over <paramref name="dims"/>.</summary>
    public unsafe Tensor Mean(long[] dims, bool keepDim = false)
    {
        fixed (long* d = dims) return From(Native.dt_mean_dims(H, d, dims.Length, keepDim ? 1 : 0, out var t), t);
    }
    /// <summary>Σ over <paramref name="dims"/>.</summary>
    public unsafe Tensor Sum(long[] dims, bool keepDim = false)
    {
        fixed (long* d = dims) return From(Native.dt_sum_dims(H, d, dims.Length, keepDim ? 1 : 0, out var t), t);
    }
    /// <summary>Index of the maximum along <paramref name="dim"/>.</summary>
    public Tensor ArgMax(long dim) => From(Native.dt_argmax(H, dim, out var t), t);
    /// <summary>Matrix product (batched).</summary>
    public Tensor MatMul(Tensor b) => From(Native.dt_matmul(H, b.H, out var t), t);
    /// <summary>Softmax along <paramref name="dim"/>.</summary>
    public Tensor Softmax(long dim) => From(Native.dt_softmax(H, dim, out var t), t);
    /// <summary>log-softmax along <paramref name="dim"/>.</summary>
    public Tensor LogSoftmax(long dim) => From(Native.dt_log_softmax(H, dim, out var t), t);

    // ---- autograd ----

    /// <summary>Whether gradients are tracked for this leaf.</summary>
    public bool RequiresGrad
    {
        get => Native.dt_requires_grad(H) != 0;
        set => Native.Check(Native.dt_set_requires_grad(H, value ? 1 : 0));
    }
    /// <summary>Back-propagates from this scalar.</summary>
    public void Backward() => Native.Check(Native.dt_backward(H));
    /// <summary>The accumulated gradient, or null.</summary>
    public Tensor? Grad
    {
        get
        {
            Native.Check(Native.dt_grad(H, out var g));
            return g == IntPtr.Zero ? null : new Tensor(g);
        }
    }
    /// <summary>Drops the accumulated gradient.</summary>
    public void ZeroGrad() => Native.Check(Native.dt_zero_grad(H));

    // ---- in place (for optimizers and EMA, under NoGrad) ----

    /// <summary>this += alpha·b.</summary>
    public void AddInPlace(Tensor b, double alpha = 1) => Native.Check(Native.dt_add_(H, b.H, alpha));
    /// <summary>this ·= s.</summary>
    public void MulInPlace(double s) => Native.Check(Native.dt_mul_scalar_(H, s));
    /// <summary>this += value·b·c.</summary>
    public void AddcmulInPlace(Tensor b, Tensor c, double value) => Native.Check(Native.dt_addcmul_(H, b.H, c.H, value));
    /// <summary>this += value·b/c.</summary>
    public void AddcdivInPlace(Tensor b, Tensor c, double value) => Native.Check(Native.dt_addcdiv_(H, b.H, c.H, value));
    /// <summary>this ← src.</summary>
    public void CopyFrom(Tensor src) => Native.Check(Native.dt_copy_(H, src.H));
    /// <summary>this ← 0.</summary>
    public void ZeroInPlace() => Native.Check(Native.dt_zero_(H));
}
