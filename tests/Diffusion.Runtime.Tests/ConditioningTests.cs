using Diffusion.Runtime;
using Diffusion.Runtime.Conditioning;
using Diffusion.Runtime.Generation;
using Diffusion.Runtime.Onnx;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit;

namespace Diffusion.Tests;

/// <summary>
/// The conditioning seam on the closed-form Gaussian model whose data mean μ is the sequence mean of a float input
/// "encoder_hidden_states" [B, sequence, C]: ε* is linear in μ, so every number below is known in closed form —
/// guided samples equal unguided ones at μ_∅ + w(μ_c − μ_∅).
/// </summary>
public class ConditioningTests
{
    private const string Input = "encoder_hidden_states";

    private static DiffusionModel Model(bool float16 = false, bool int64Timestep = false, bool int32Timestep = false) =>
        Fixtures.Load(Fixtures.Spec() with
        {
            MeanInput = Input, Float16 = float16, Int64Timestep = int64Timestep, Int32Timestep = int32Timestep,
        });

    /// <summary>Entries of a sequence of <paramref name="length"/> rows whose mean is each entry's μ.</summary>
    private static ConditioningTensor Means(int length, params float[] means)
    {
        var values = new float[means.Length * length];
        for (int e = 0; e < means.Length; e++)
            for (int j = 0; j < length; j++) values[e * length + j] = means[e] + (j - (length - 1) / 2f) * 0.25f;
        return ConditioningTensor.FromFloats(values, means.Length, length, 1);
    }

    private static Condition With(ConditioningTensor t) => Condition.None.With(Input, t);

    private static GenerationRequest Request(ConditioningTensor c, int count = 64) => new()
    {
        Sampler = "ddim", Steps = 30, Count = count, BatchSize = 16, Seed = 5, Condition = With(c),
    };

    [Fact]
    public void The_model_lists_its_conditioning_input_with_an_open_sequence_length()
    {
        using var model = Model();
        var input = Assert.Single(model.ConditioningInputs);
        Assert.Equal(Input, input.Name);
        Assert.Equal(TensorElementType.Float, input.ElementType);
        Assert.Equal([-1L, 1L], input.EntryDimensions);
        Assert.Null(model.ClassLabelsInput);
    }

    [Fact]
    public void A_text_like_condition_sets_the_samples_mean_whatever_its_sequence_length()
    {
        using var model = Model();
        var generator = new ImageGenerator(model);
        foreach (var length in new[] { 1, 3, 7 })
        {
            var r = generator.Generate(Request(Means(length, -0.2f), count: 512) with { Steps = 250 });
            var (mean, std) = Fixtures.Moments(r.Images);
            Assert.InRange(mean, -0.2 - 0.01, -0.2 + 0.01);
            Assert.InRange(std, Fixtures.Std - 0.02, Fixtures.Std + 0.02);
        }
    }

    [Fact]
    public void Guidance_pairs_the_condition_with_the_unconditional_one_in_one_batched_call()
    {
        using var model = Model();
        var generator = new ImageGenerator(model);
        float mc = 0.6f, mu = 0.1f, w = 2.5f;
        var guided = generator.Generate(Request(Means(4, mc)) with
        {
            UnconditionalCondition = With(Means(4, mu)), Guidance = w,
        });
        var exact = generator.Generate(Request(Means(2, mu + w * (mc - mu))));
        Assert.Equal(exact.NetworkCalls, guided.NetworkCalls); // one call per step, the batch doubled
        for (int i = 0; i < exact.Images.Length; i++) Assert.Equal(exact.Images[i], guided.Images[i], 1e-4f);
        var unguided = generator.Generate(Request(Means(4, mc)));
        Assert.True(Math.Abs(Fixtures.Moments(unguided.Images).Mean - Fixtures.Moments(guided.Images).Mean) > 0.5);
    }

    [Fact]
    public void One_entry_per_image_gives_each_image_what_its_own_condition_gives_it()
    {
        using var model = Model();
        var generator = new ImageGenerator(model);
        float[] means = [-0.5f, 0f, 0.25f, 0.5f, 0.7f, -0.1f];
        var perImage = generator.Generate(Request(Means(3, means), count: 6) with { BatchSize = 4 });
        for (int i = 0; i < means.Length; i++)
        {
            var alone = generator.Generate(Request(Means(3, means[i]), count: 6) with { BatchSize = 6 });
            Assert.Equal(alone.Image(i).ToArray(), perImage.Image(i).ToArray());
        }
    }

    [Fact]
    public void A_float16_graph_is_fed_and_read_through_converted_buffers()
    {
        using var single = Model();
        using var half = Model(float16: true);
        Assert.Equal(TensorElementType.Float16, half.SampleElementType);
        Assert.Equal(TensorElementType.Float16, half.OutputElementType);
        Assert.Equal(TensorElementType.Float16, half.TimestepElementType);
        Assert.Equal(TensorElementType.Float16, half.ConditioningInputs[0].ElementType);
        var request = Request(Means(3, 0.3f)) with { UnconditionalCondition = With(Means(3, 0f)), Guidance = 2 };
        var a = new ImageGenerator(single).Generate(request).Images;
        var b = new ImageGenerator(half).Generate(request).Images;
        double worst = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
        Assert.InRange(worst, 1e-6, 2e-2); // float16's precision, and not bit-equal: the conversion ran
    }

    [Fact]
    public void Integer_timesteps_of_either_width_are_the_same_rounded_timesteps()
    {
        using var int64 = Model(int64Timestep: true);
        using var int32 = Model(int32Timestep: true);
        Assert.Equal(TensorElementType.Int32, int32.TimestepElementType);
        var request = Request(Means(2, 0.3f)) with { Sampler = "dpm++2m" };
        Assert.Equal(new ImageGenerator(int64).Generate(request).Images,
            new ImageGenerator(int32).Generate(request).Images);
    }

    [Fact]
    public void Every_way_a_condition_can_be_wrong_is_refused_by_name_before_anything_runs()
    {
        using var model = Model();
        var generator = new ImageGenerator(model);
        var good = Request(Means(3, 0.3f), count: 4);
        void Refused(GenerationRequest r, string parameter, string words)
        {
            var e = Assert.Throws<DiffusionArgumentException>(() => generator.Generate(r));
            Assert.Equal(parameter, e.Parameter);
            Assert.Contains(words, e.Message);
        }
        Refused(good with { Condition = null }, "Condition", $"takes '{Input}' (float32 [batch,sequence,1])");
        Refused(good with { Condition = Condition.None }, Input, "gives no value for it");
        Refused(good with { Condition = Condition.None.With(Input, ConditioningTensor.FromIntegers([1, 2, 3], 1, 3, 1)) },
            Input, "gives integers");
        Refused(good with { Condition = With(ConditioningTensor.FromFloats(new float[6], 1, 3, 2)) }, Input,
            "float [1,3,2]");
        Refused(good with { Condition = With(Means(3, 0f, 1f)) }, Input, "2 entries for 4 images");
        Refused(good with { Condition = good.Condition!.With("pooled", Means(1, 0f)) }, "pooled",
            "has no input 'pooled'");
        Refused(good with { Guidance = 3 }, "Unconditional", "needs an unconditional side");
        Refused(good with { UnconditionalCondition = With(Means(3, 0f)) }, "UnconditionalCondition",
            "only serves guidance");
        Refused(good with { UnconditionalCondition = With(Means(5, 0f)), Guidance = 2 }, Input, "differ in shape");
        Refused(good with { ClassLabels = [1] }, "ClassLabels", "both given");
        Assert.Throws<DiffusionArgumentException>(() => ConditioningTensor.FromFloats(new float[5], 2, 3));
        Assert.Throws<DiffusionArgumentException>(() => ConditioningTensor.FromFloats([], 0));
    }

    [Fact]
    public void A_class_conditional_model_guided_by_labels_still_equals_its_explicit_condition()
    {
        var spec = Fixtures.Spec() with { ClassMeans = [[0.5f], [-0.5f], [0f]] };
        using var model = Fixtures.Load(spec);
        var generator = new ImageGenerator(model);
        var byLabels = new GenerationRequest
        {
            Sampler = "ddim", Steps = 10, Count = 4, BatchSize = 4, Guidance = 3, ClassLabels = [0, 1, 1, 0],
        };
        var explicitly = byLabels with
        {
            ClassLabels = [],
            Condition = Condition.None.With("class_labels", ConditioningTensor.FromIntegers([0, 1, 1, 0], 4)),
            UnconditionalCondition = Condition.None.With("class_labels", ConditioningTensor.FromIntegers([2], 1)),
        };
        Assert.Equal(generator.Generate(byLabels).Images, generator.Generate(explicitly).Images);
    }
}
