using Diffusion.Trainer.Torch;

namespace Diffusion.Trainer.Tests;

public class TorchTests
{
    [Fact]
    public void Elementwise_ops_and_reductions_match_values_computed_by_hand()
    {
        using var scope = DisposeScope.Enter();
        var a = Tensor.FromArray([1f, -2f, 3f, 0.5f], 2, 2);
        var b = Tensor.FromArray([4f, 5f, -6f, 2f], 2, 2);
        Assert.Equal(new[] { 5f, 3f, -3f, 2.5f }, (a + b).ToFloatArray());
        Assert.Equal(new[] { 4f, -10f, -18f, 1f }, (a * b).ToFloatArray());
        Assert.Equal(new[] { 2f, -4f, 6f, 1f }, (a * 2).ToFloatArray());
        Assert.Equal(new[] { 0f, 3f, -2f, 0.5f }, (1 - a).ToFloatArray());
        Assert.Equal(2.5 / 4, a.Mean().Item(), 6);
        var silu = a.Silu().ToFloatArray();
        Assert.Equal(1 / (1 + Math.Exp(-1)), silu[0], 5);
        Assert.Equal(new[] { 2L, 2L }, a.MatMul(b).Shape);
        // [[1,−2],[3,0.5]]·[[4,5],[−6,2]] = [[16, 1], [9, 16]]
        Assert.Equal(new[] { 16f, 1f, 9f, 16f }, a.MatMul(b).ToFloatArray());
        var softmax = Tensor.FromArray([0f, (float)Math.Log(3)], 1, 2).Softmax(1).ToFloatArray(); // [1, 3]/4
        Assert.Equal(0.25, softmax[0], 6);
    }

    [Fact]
    public void Conv2d_matches_a_hand_computed_convolution()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensor.FromArray(Enumerable.Range(0, 16).Select(i => (float)i).ToArray(), 1, 1, 4, 4);
        var w = Tensor.FromArray([1f, 0f, 0f, -1f], 1, 1, 2, 2); // x[i,j] − x[i+1,j+1] = −5 everywhere
        var y = Functional.Conv2d(x, w, Tensor.FromArray([0.5f], 1)).ToFloatArray();
        Assert.Equal(9, y.Length);
        Assert.All(y, v => Assert.Equal(-4.5f, v));
    }

    [Fact]
    public void Group_norm_normalises_each_group()
    {
        using var scope = DisposeScope.Enter();
        var x = Tensor.Randn([2, 4, 3, 3], new Generator(1)) * 3 + 7;
        var y = Functional.GroupNorm(x, 2, null, null).ToFloatArray();
        for (int group = 0; group < 4; group++) // 2 images × 2 groups of 2 channels × 9 pixels
        {
            var values = y.Skip(group * 18).Take(18).ToArray();
            double mean = values.Average(), variance = values.Average(v => (v - mean) * (v - mean));
            Assert.Equal(0, mean, 5);
            Assert.Equal(1, variance, 3);
        }
    }

    [Fact]
    public void Autograd_gives_the_analytic_gradient()
    {
        using var scope = DisposeScope.Enter();
        var w = DisposeScope.Detach(Tensor.FromArray([1f, 2f, 3f], 3));
        w.RequiresGrad = true;
        var loss = (w * w).Sum() * 0.5 + w.Sum(); // ∂/∂w = w + 1
        loss.Backward();
        Assert.Equal(new[] { 2f, 3f, 4f }, w.Grad!.ToFloatArray());
        w.ZeroGrad();
        Assert.Null(w.Grad);
        w.Dispose();
    }

    [Fact]
    public void Shim_errors_surface_as_exceptions_with_libtorch_messages()
    {
        using var scope = DisposeScope.Enter();
        var a = Tensor.Zeros(2, 3);
        var b = Tensor.Zeros(4, 5);
        var e = Assert.Throws<TorchException>(() => a.MatMul(b));
        Assert.Contains("mat1 and mat2 shapes cannot be multiplied", e.Message);
        Assert.Throws<TorchException>(() => a.Reshape(7));
        Assert.Throws<ArgumentException>(() => Tensor.FromArray([1f, 2f], 3));
        Assert.Equal(new[] { 0f, 0f }, Tensor.Zeros(2).ToFloatArray()); // still usable afterwards
    }

    [Fact]
    public void Generators_are_seeded_and_their_state_restores_the_stream()
    {
        using var scope = DisposeScope.Enter();
        using var g1 = new Generator(42);
        using var g2 = new Generator(42);
        Assert.Equal(Tensor.Randn([5], g1).ToFloatArray(), Tensor.Randn([5], g2).ToFloatArray());
        var state = g1.State;
        var next = Tensor.Randn([5], g1).ToFloatArray();
        g1.State = state;
        Assert.Equal(next, Tensor.Randn([5], g1).ToFloatArray());
    }

    [Fact]
    public void Dispose_scopes_free_temporaries_and_keep_moved_tensors()
    {
        Tensor kept, dropped;
        using (var scope = DisposeScope.Enter())
        {
            dropped = Tensor.Zeros(3);
            kept = scope.MoveToOuter(Tensor.Full([3], 2));
        }
        Assert.True(dropped.IsClosed);
        Assert.False(kept.IsClosed);
        Assert.Equal(new[] { 2f, 2f, 2f }, kept.ToFloatArray());
        kept.Dispose();
        Assert.Throws<ObjectDisposedException>(() => kept.ToFloatArray());
    }

    [Fact]
    public void Tensors_save_and_load()
    {
        var path = Path.Combine(Path.GetTempPath(), $"tensors-{Guid.NewGuid():N}.pt");
        using (var scope = DisposeScope.Enter())
            TorchRuntime.Save([Tensor.FromArray([1f, 2f, 3f], 3), Tensor.FromArray([7L, 8L], 2)], path);
        var loaded = TorchRuntime.Load(path);
        Assert.Equal(new[] { 1f, 2f, 3f }, loaded[0].ToFloatArray());
        Assert.Equal(new[] { 7L, 8L }, loaded[1].ToLongArray());
        foreach (var t in loaded) t.Dispose();
        Assert.Throws<TorchException>(() => TorchRuntime.Load(path + ".missing"));
    }
}
