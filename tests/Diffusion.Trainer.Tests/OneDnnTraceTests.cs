using Diffusion.Trainer.Training;

namespace Diffusion.Trainer.Tests;

/// <summary>
/// Reading oneDNN's verbose trace (bench-train --kernels): lines as libtorch 2.10's oneDNN 3.7 prints them, and as
/// oneDNN 2.x printed them, summed per kind of kernel over the steps kept; traces whose steps differ are refused.
/// </summary>
public class OneDnnTraceTests
{
    private const string Header = """
        onednn_verbose,v1,info,oneDNN v3.7.1 (commit 8d263e693366ef8db40acc569cc7d8edf644556d)
        onednn_verbose,v1,info,cpu,runtime:OpenMP,nthr:2
        onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with float16, Intel DL Boost and bfloat16 support and Intel AMX with bfloat16 and 8-bit integer support
        onednn_verbose,v1,info,gpu,runtime:none
        onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,memory_descriptors,attributes,auxiliary,problem_desc,exec_time
        onednn_verbose,v1,graph,info,template:operation,engine,partition_id,partition_kind,op_names,data_formats,logical_tensors,fpmath_mode,implementation,backend,exec_time

        """;

    /// <summary>One step: a layout reorder into the blocked format, an AMX bf16 convolution, its weight gradient.</summary>
    private static string Step(double reorder, double forward, double weights) => $"""
        onednn_verbose,v1,primitive,exec,cpu,reorder,jit:blk,undef,src:bf16::blocked:abcd::f0 dst:bf16::blocked:aBcd32b::f0,attr-scratchpad:user,,64x32x28x28,{reorder}
        onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_amx,forward_training,src:bf16:a:blocked:aBcd32b::f0 wei:bf16:a:blocked:ABcd16b32a2b::f0 bia:f32:a:blocked:a::f0 dst:bf16:a:blocked:aBcd32b::f0,attr-scratchpad:user,alg:convolution_direct,mb64_ic32oc32_ih28oh28kh3sh1dh0ph1_iw28ow28kw3sw1dw0pw1,{forward}
        Some line the program printed itself
        onednn_verbose,v1,graph,exec,cpu,100002,sdp,,,,,,,0.5
        onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core_amx,backward_weights,src:bf16:a:blocked:aBcd32b::f0 wei:f32:ap:blocked:ABcd16b16a::f0 bia:undef::undef::: dst:bf16:ap:blocked:aBcd32b::f0,attr-scratchpad:user,alg:convolution_direct,mb64_ic32oc32_ih28oh28kh3sh1dh0ph1_iw28ow28kw3sw1dw0pw1,{weights}

        """;

    [Fact]
    public void The_warm_up_steps_are_left_out_and_each_kind_is_summed_per_step()
    {
        var trace = OneDnnTrace.Parse(Header + Step(9, 90, 900) + Step(1, 10, 100) + Step(3, 30, 300), 3, 2);
        Assert.Equal("oneDNN v3.7.1", trace.Version);
        Assert.StartsWith("Intel AVX-512 with float16", trace.Isa);
        Assert.EndsWith("Intel AMX with bfloat16 and 8-bit integer support", trace.Isa);
        Assert.Equal(2, trace.Steps);
        Assert.Equal(3, trace.Kernels.Count); // the graph partition and the program's own line are not primitives
        var (weights, forward, reorder) = (trace.Kernels[0], trace.Kernels[1], trace.Kernels[2]);
        Assert.Equal(new OneDnnKernelKey("convolution", "jit:avx512_core_amx", "backward_weights", "bf16/f32", ""),
            weights.Key);
        Assert.Equal(200, weights.MillisecondsPerStep, 9);
        Assert.Equal(new OneDnnKernelKey("convolution", "brg_conv_fwd:avx512_core_amx", "forward_training", "bf16/f32",
            ""), forward.Key);
        Assert.Equal(20, forward.MillisecondsPerStep, 9);
        Assert.Equal(new OneDnnKernelKey("reorder", "jit:blk", "", "bf16", "abcd→aBcd32b"), reorder.Key);
        Assert.Equal(2, reorder.MillisecondsPerStep, 9);
        Assert.All(trace.Kernels, k => Assert.Equal(1, k.CallsPerStep));
        Assert.Equal(222, trace.MillisecondsPerStep, 9);
    }

    [Fact]
    public void Older_traces_and_type_conversions_are_read()
    {
        const string v2 = """
            dnnl_verbose,info,oneDNN v2.7.3 (commit 7710ac7bb8c2c5ac1b6e0c5cd7f5b9a9bd6a55a6)
            dnnl_verbose,info,cpu,isa:Intel AVX2
            dnnl_verbose,exec,cpu,reorder,simple:any,undef,src_f32::blocked:abcd:f0 dst_bf16::blocked:aBcd8b:f0,,,64x32x28x28,0.25
            dnnl_verbose,exec,cpu,convolution,jit:avx2,backward_data,diff_src_f32::blocked:aBcd8b:f0 wei_f32::blocked:ABcd8a8b:f0 bia_undef::undef::f0 diff_dst_f32::blocked:aBcd8b:f0,,alg:convolution_direct,mb64_ic32oc32_ih28oh28kh3sh1dh0ph1_iw28ow28kw3sw1dw0pw1,4.5
            """;
        var trace = OneDnnTrace.Parse(v2, 1, 1);
        Assert.Equal("oneDNN v2.7.3", trace.Version);
        Assert.Equal("Intel AVX2", trace.Isa);
        Assert.Equal(new OneDnnKernelKey("convolution", "jit:avx2", "backward_data", "f32", ""), trace.Kernels[0].Key);
        Assert.Equal(new OneDnnKernelKey("reorder", "simple:any", "", "f32→bf16", "abcd→aBcd8b"), trace.Kernels[1].Key);
        Assert.Equal(4.75, trace.MillisecondsPerStep, 9);
    }

    [Fact]
    public void A_step_without_onednn_has_no_kernels()
    {
        var trace = OneDnnTrace.Parse("reference UNet …\n  4.0 images/s (median step 15857.2 ms, mean 15857.2 ms", 3, 2);
        Assert.Empty(trace.Kernels);
        Assert.Equal(0, trace.MillisecondsPerStep);
        Assert.Equal("", trace.Isa);
    }

    [Fact]
    public void Steps_that_ran_different_primitives_are_refused()
    {
        var uneven = Assert.Throws<DiffusionException>(() => OneDnnTrace.Parse(Header + Step(1, 2, 3), 2, 1));
        Assert.Contains("3 primitive executions, not a multiple of its 2 steps", uneven.Message);
        var swapped = Step(1, 2, 3).Split('\n');
        (swapped[0], swapped[1]) = (swapped[1], swapped[0]);
        var differ = Assert.Throws<DiffusionException>(() =>
            OneDnnTrace.Parse(Header + Step(1, 2, 3) + string.Join('\n', swapped), 2, 2));
        Assert.Contains("steps differ at execution 0 of step 2", differ.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => OneDnnTrace.Parse(Header, 2, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => OneDnnTrace.Parse(Header, 2, 0));
    }
}
