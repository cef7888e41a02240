using Diffusion.ReferenceModels;
using Diffusion.Runtime.Imaging;

namespace Diffusion.Runtime.Tests;

/// <summary>Checks our writers against the reference implementations: ONNX's own checker and NumPy.</summary>
public class ReferenceToolTests
{
    [Fact]
    public void Onnx_checker_accepts_every_variant_of_the_reference_model()
    {
        var dir = Fixtures.TempFolder();
        var specs = new[]
        {
            Fixtures.Spec(), Fixtures.Spec("v_prediction"), GaussianModel.Bundled,
            Fixtures.Spec() with { Int64Timestep = true, ScalarTimestep = true, WithMetadata = false },
        };
        var paths = specs.Select((s, i) =>
        {
            var p = Path.Combine(dir, $"m{i}.onnx"); File.WriteAllBytes(p,
                GaussianModel.Build(s)); return p;
        }).ToArray();
        var output = PythonReference.Run("""
            import sys, onnx, json
            for path in sys.argv[1:]:
                m = onnx.load(path)
                onnx.checker.check_model(m, full_check=True)
                meta = {p.key: p.value for p in m.metadata_props}
                print(m.opset_import[0].version, m.graph.input[0].type.tensor_type.shape.dim[0].dim_param, json.loads(meta.get('diffusion.config', '{}')).get('prediction_type'))
            """, paths);
        Assert.Equal(["17 batch epsilon", "17 batch v_prediction", "17 batch epsilon", "17 batch None"],
            output.Split('\n'));
    }

    [Fact]
    public void Numpy_reads_our_npy_and_we_read_numpys()
    {
        var dir = Fixtures.TempFolder();
        var ours = Path.Combine(dir, "ours.npy");
        Npy.Save(ours, new[] { 1.5f, -2f, 3.25f, 0f, 7f, -0.125f }, 1, 2, 3);
        var theirs = Path.Combine(dir, "theirs.npy");
        var summary = PythonReference.Run("""
            import sys, numpy as np
            a = np.load(sys.argv[1])
            print(a.shape, a.dtype, float(a.sum()), float(a[0, 1, 2]))
            np.save(sys.argv[2], np.arange(12, dtype=np.float32).reshape(2, 1, 2, 3) / 4)
            np.save(sys.argv[3], np.ones((2, 2), dtype=np.float64))
            """, ours, theirs, Path.Combine(dir, "f64.npy"));
        Assert.Equal("(1, 2, 3) float32 9.625 -0.125", summary);
        var back = Npy.Load(theirs);
        Assert.Equal(new[] { 2, 1, 2, 3 }, back.Shape);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => i / 4f), back.Data);
        Assert.Equal(new float[] { 1, 1, 1, 1 }, Npy.Load(Path.Combine(dir, "f64.npy")).Data);
    }

    [Fact]
    public void The_committed_bundled_model_is_what_the_builder_makes()
    {
        var committed = File.ReadAllBytes(Fixtures.GaussianModelPath);
        Assert.Equal(GaussianModel.Build(GaussianModel.Bundled), committed);
    }
}
