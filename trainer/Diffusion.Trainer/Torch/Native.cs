using System.Runtime.InteropServices;

namespace Diffusion.Trainer.Torch;

/// <summary>The libtorch shim's C functions (trainer/native/shim.cpp), bound once. Every call returns 0 or −1 (see <see cref="Check"/>).</summary>
internal static partial class Native
{
    private const string Lib = "diffusion_torch";

    [LibraryImport(Lib)] internal static partial IntPtr dt_last_error();
    [LibraryImport(Lib)] internal static partial void dt_free(IntPtr t);
    [LibraryImport(Lib)] internal static partial int dt_cuda_available();
    [LibraryImport(Lib)] internal static partial int dt_set_num_threads(int n);
    [LibraryImport(Lib)] internal static partial int dt_get_num_threads();
    [LibraryImport(Lib)] internal static partial int dt_manual_seed(ulong seed);
    [LibraryImport(Lib)] internal static partial IntPtr dt_version();

    [LibraryImport(Lib)] internal static unsafe partial int dt_from_data(void* data, int dtype, long* shape, int ndim, out IntPtr t);
    [LibraryImport(Lib)] internal static unsafe partial int dt_full(long* shape, int ndim, double value, int dtype, int device, int index, out IntPtr t);
    [LibraryImport(Lib)] internal static partial int dt_arange(long n, int dtype, out IntPtr t);
    [LibraryImport(Lib)] internal static unsafe partial int dt_random(int kind, long* shape, int ndim, long high, IntPtr generator, int device, int index, out IntPtr t);
    [LibraryImport(Lib)] internal static partial int dt_generator_new(ulong seed, out IntPtr g);
    [LibraryImport(Lib)] internal static partial void dt_generator_free(IntPtr g);
    [LibraryImport(Lib)] internal static partial int dt_default_generator(out IntPtr g);
    [LibraryImport(Lib)] internal static partial int dt_generator_get_state(IntPtr g, out IntPtr state);
    [LibraryImport(Lib)] internal static partial int dt_generator_set_state(IntPtr g, IntPtr state);

    [LibraryImport(Lib)] internal static partial int dt_ndim(IntPtr t);
    [LibraryImport(Lib)] internal static unsafe partial int dt_shape(IntPtr t, long* shape);
    [LibraryImport(Lib)] internal static partial int dt_dtype(IntPtr t);
    [LibraryImport(Lib)] internal static partial int dt_device(IntPtr t);
    [LibraryImport(Lib)] internal static unsafe partial int dt_copy_out(IntPtr t, void* dst, long bytes);
    [LibraryImport(Lib)] internal static unsafe partial int dt_copy_in(IntPtr t, void* src, long bytes);
    [LibraryImport(Lib)] internal static partial int dt_item(IntPtr t, out double value);
    [LibraryImport(Lib)] internal static partial int dt_to(IntPtr t, int device, int index, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_clone(IntPtr t, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_detach(IntPtr t, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_contiguous(IntPtr t, out IntPtr r);

    [LibraryImport(Lib)] internal static partial int dt_binary(int op, IntPtr a, IntPtr b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_binary_scalar(int op, IntPtr a, double s, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_unary(int op, IntPtr a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_where(IntPtr c, IntPtr a, IntPtr b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_compare_scalar(int op, IntPtr a, double s, out IntPtr r);

    [LibraryImport(Lib)] internal static partial int dt_add_(IntPtr a, IntPtr b, double alpha);
    [LibraryImport(Lib)] internal static partial int dt_mul_scalar_(IntPtr a, double s);
    [LibraryImport(Lib)] internal static partial int dt_addcmul_(IntPtr a, IntPtr b, IntPtr c, double value);
    [LibraryImport(Lib)] internal static partial int dt_addcdiv_(IntPtr a, IntPtr b, IntPtr c, double value);
    [LibraryImport(Lib)] internal static partial int dt_copy_(IntPtr dst, IntPtr src);
    [LibraryImport(Lib)] internal static partial int dt_zero_(IntPtr a);

    [LibraryImport(Lib)] internal static unsafe partial int dt_reshape(IntPtr a, long* shape, int ndim, out IntPtr r);
    [LibraryImport(Lib)] internal static unsafe partial int dt_permute(IntPtr a, long* order, int ndim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_transpose(IntPtr a, long d0, long d1, out IntPtr r);
    [LibraryImport(Lib)] internal static unsafe partial int dt_cat(IntPtr* ts, int n, long dim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_narrow(IntPtr a, long dim, long start, long length, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_index_select(IntPtr a, long dim, IntPtr index, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_flip(IntPtr a, long dim, out IntPtr r);

    [LibraryImport(Lib)] internal static partial int dt_sum(IntPtr a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_mean(IntPtr a, out IntPtr r);
    [LibraryImport(Lib)] internal static unsafe partial int dt_mean_dims(IntPtr a, long* dims, int n, int keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static unsafe partial int dt_sum_dims(IntPtr a, long* dims, int n, int keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_argmax(IntPtr a, long dim, out IntPtr r);

    [LibraryImport(Lib)] internal static partial int dt_conv2d(IntPtr x, IntPtr w, IntPtr b, long stride, long padding, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_linear(IntPtr x, IntPtr w, IntPtr b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_matmul(IntPtr a, IntPtr b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_group_norm(IntPtr x, long groups, IntPtr w, IntPtr b, double eps, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_softmax(IntPtr x, long dim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_log_softmax(IntPtr x, long dim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_upsample_nearest2d(IntPtr x, long scale, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_avg_pool2d(IntPtr x, long kernel, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_dropout(IntPtr x, double p, int train, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_mse_loss(IntPtr a, IntPtr b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_nll_loss(IntPtr logp, IntPtr target, out IntPtr r);

    [LibraryImport(Lib)] internal static partial int dt_set_requires_grad(IntPtr t, int value);
    [LibraryImport(Lib)] internal static partial int dt_requires_grad(IntPtr t);
    [LibraryImport(Lib)] internal static partial int dt_backward(IntPtr t);
    [LibraryImport(Lib)] internal static partial int dt_grad(IntPtr t, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int dt_zero_grad(IntPtr t);
    [LibraryImport(Lib)] internal static partial int dt_set_grad_enabled(int enabled);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static unsafe partial int dt_save(IntPtr* ts, int n, string path);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int dt_load(string path, out IntPtr array, out int n);
    [LibraryImport(Lib)] internal static partial void dt_free_array(IntPtr array);

    /// <summary>Throws the shim's message when a call failed.</summary>
    internal static void Check(int status)
    {
        if (status != 0) throw new TorchException(Marshal.PtrToStringUTF8(dt_last_error()) ?? "libtorch call failed");
    }
}
