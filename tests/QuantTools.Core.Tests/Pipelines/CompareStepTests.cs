using QuantTools.Core.Formats;
using QuantTools.Core.Pipelines;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Pipelines;

public class CompareStepTests
{
    private static string Models => Fixtures.Core("models").Replace('\\', '/');

    private static PipelineError Single(IReadOnlyList<PipelineError> errors, string contains)
    {
        var hit = errors.Where(e => e.Message.Contains(contains, StringComparison.Ordinal)).ToList();
        Assert.True(hit.Count == 1, $"expected one error containing '{contains}', got:\n{string.Join("\n", errors)}");
        return hit[0];
    }

    private static List<PipelineJobResult> RunAll(PipelineRunner runner) =>
        runner.Run(CancellationToken.None).OfType<PipelineJobFinished>().Select(e => e.Result).ToList();

    /// <summary>A copy of seed_convnet's golden JSON and its companion .safetensors in the folder (names kept).</summary>
    private static void CopyGolden(PipelineDir d)
    {
        d.Copy(Path.Combine(Models, "seed_convnet.json"), "seed_convnet.json");
        d.Copy(Path.Combine(Models, "seed_convnet.safetensors"), "seed_convnet.safetensors");
    }

    /// <summary>Adds <paramref name="delta"/> to element <paramref name="at"/> of a tensor of a .safetensors file.</summary>
    private static void Perturb(string file, string tensor, int at, int delta)
    {
        var f = SafeTensorsFile.Open(file);
        var all = f.ReadAll().ToList();
        var meta = f.Metadata;
        int i = all.FindIndex(t => t.Name == tensor);
        var t = all[i].Tensor;
        var data = (Array)t.Data.Clone();
        if (data is byte[] b) b[at] = (byte)Math.Clamp(b[at] + delta, 0, 255);
        else if (data is float[] fl) fl[at] += delta;
        all[i] = (tensor, new Tensor(t.DType, t.Shape, data));
        var tmp = file + ".new";
        SafeTensorsFile.Write(tmp, all, meta);
        File.Move(tmp, file, overwrite: true);
    }

    private const string GoldenJob = """
        jobs:
          - name: cmp
            models: seed_convnet.torchscript.pt
            inputs: [{file: seed_convnet.safetensors, tensors: [input]}]
            steps:
              - run
              - compare: {against: {golden: seed_convnet.json}, max_lsb: 0}
              - assert:
                  - {metric: compare.first_diverging_layer}
                  - {metric: compare.max_lsb, max: 0}
                  - {metric: compare.sqnr, layer: conv2, min: 60}
        """;

    [Fact]
    public void ParseErrorsHaveLineColumnAndWhatWasExpected()
    {
        using var d = new PipelineDir("m.pt", "in.safetensors");
        var (_, errors) = d.Parse("""
            jobs:
              - name: a
                models: m.pt
                inputs: [{file: in.safetensors}]
                steps:
                  - compare: {against: {engine: x86}}
                  - run: {engines: [x86, qnnpack]}
                  - compare: {against: {engine: onednn}, colour: red}
                  - compare: {name: b, against: {golden: nope.json}}
                  - compare: {name: c, against: {engine: x86, golden: m.pt}}
                  - compare: {name: d}
                  - compare: {name: e, against: {engine: x86}, max_lsb: -1}
                  - assert:
                      - {metric: compare.first_diverging_layer, max: 0}
                      - {metric: compare.sqnr, step: zz, min: 30}
                      - {metric: compare.sqnr, engine: x86, min: 30}
            """);
        Assert.Equal((6, 9), (Single(errors, "step 'compare' needs an earlier 'run' step").Line, Single(errors, "step 'compare' needs an earlier 'run' step").Column));
        var notRun = Single(errors, "'onednn' is not among the run step's engines");
        Assert.Equal((8, 37), (notRun.Line, notRun.Column));
        Assert.Equal(8, Single(errors, "unknown key 'colour'").Line);
        var missing = Single(errors, "file 'nope.json' does not exist");
        Assert.Equal((9, 46), (missing.Line, missing.Column));
        Assert.Equal(10, Single(errors, "give exactly one of engine").Line);
        Assert.Equal(11, Single(errors, "the key 'against' is required").Line);
        Assert.Equal(12, Single(errors, "compare.max_lsb: must be 0 or more").Line);
        Assert.Equal(14, Single(errors, "compare.first_diverging_layer takes no equals/min/max").Line);
        Assert.Equal(15, Single(errors, "no earlier compare step named 'zz'").Line);
        Assert.Equal(16, Single(errors, "engine 'x86' is not among the compare step's engines").Line);
    }

    [Fact]
    public void AgainstTheGoldenJsonEveryLayerIsExact()
    {
        using var d = new PipelineDir();
        CopyGolden(d);
        d.Copy(Path.Combine(Models, "seed_convnet.torchscript.pt"), "seed_convnet.torchscript.pt");
        var def = d.Valid(GoldenJob);
        var r = Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "out"))));
        Assert.True(r.Status == PipelineStatus.Passed, string.Join("\n", r.Failures));
        var cmp = r.Steps.Single(s => s.Step == "compare");
        Assert.Equal(0, cmp.Metrics["x86.max_lsb"]);
        Assert.Equal(0, cmp.Metrics["x86.failed_layers"]);
        Assert.True(double.IsPositiveInfinity(cmp.Metrics["x86.sqnr"]));
        Assert.Equal(["quant", "conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "output"], cmp.Layers!.Select(l => l.Layer));
        Assert.All(cmp.Layers!, l => Assert.True(l.Passed));
        Assert.Equal(3, r.Steps.Single(s => s.Step == "assert").Assertions.Count);
        // per-layer rows reach results.json
        var json = File.ReadAllText(Path.Combine(d.Dir, "out", "jobs", def.Jobs[0].FileName + ".json"));
        Assert.Contains("\"Layer\": \"conv2\"", json);
    }

    [Fact]
    public void APerturbedGoldenFailsNamingTheLayerAndMetric_AndUpdateGoldenFixesIt()
    {
        using var d = new PipelineDir();
        CopyGolden(d);
        d.Copy(Path.Combine(Models, "seed_convnet.torchscript.pt"), "seed_convnet.torchscript.pt");
        Perturb(Path.Combine(d.Dir, "seed_convnet.safetensors"), "act/conv2/int", 100, 3);
        var def = d.Valid(GoldenJob);
        var r = Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "out"))));
        Assert.Equal(PipelineStatus.Failed, r.Status);
        var first = r.Failures.Single(f => f.Metric == "compare.first_diverging_layer");
        Assert.Equal("conv2", first.Layer);
        Assert.Contains("first diverging layer 'conv2'", first.Message);
        var lsb = r.Failures.Single(f => f.Metric == "compare.max_lsb");
        Assert.Equal("conv2", lsb.Layer);
        Assert.Equal(3, lsb.Actual);
        Assert.Contains(r.Failures, f => f.Metric == "compare.sqnr" && f.Layer == "conv2");

        // -UpdateGolden: rewritten from the run, then a plain run passes
        var up = Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "out2")) { UpdateGolden = true }));
        Assert.True(up.Status == PipelineStatus.Passed, string.Join("\n", up.Failures));
        Assert.Equal([Path.Combine(d.Dir, "seed_convnet.safetensors")], up.GoldenWritten);
        var again = Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "out3"))));
        Assert.True(again.Status == PipelineStatus.Passed, string.Join("\n", again.Failures));
        // the input and the other layers are as PyTorch wrote them
        var orig = SafeTensorsFile.Open(Path.Combine(Models, "seed_convnet.safetensors")).ReadAll().ToDictionary(t => t.Name, t => t.Tensor);
        var now = SafeTensorsFile.Open(Path.Combine(d.Dir, "seed_convnet.safetensors")).ReadAll().ToDictionary(t => t.Name, t => t.Tensor);
        Assert.Equal(orig.Keys.Order(), now.Keys.Order());
        foreach (var (name, t) in orig)
        {
            Assert.Equal(t.DType, now[name].DType);
            Assert.Equal(t.Shape, now[name].Shape);
            for (int i = 0; i < t.Length; i++) Assert.Equal(t.GetDouble(i), now[name].GetDouble(i));
        }
    }

    [Fact]
    public void UpdateGoldenRewritesAnAssertsSafetensorsGolden()
    {
        using var d = new PipelineDir();
        d.Copy(Path.Combine(Models, "seed_convnet.safetensors"), "seed_convnet.safetensors");
        var golden = d.Copy(Path.Combine(Models, "seed_convnet.safetensors"), "golden.safetensors");
        d.Copy(Path.Combine(Models, "seed_convnet.torchscript.pt"), "seed_convnet.torchscript.pt");
        Perturb(golden, "output", 5, 1);
        var def = d.Valid("""
            jobs:
              - name: g
                models: seed_convnet.torchscript.pt
                inputs: [{file: seed_convnet.safetensors, tensors: [input]}]
                steps:
                  - run
                  - assert:
                      - {metric: output.equal, golden: golden.safetensors, tensor: output}
                      - {metric: output.max_diff_lsb, golden: golden.safetensors, tensor: output, max: 0}
            """);
        Assert.Equal(PipelineStatus.Failed, Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "o1")))).Status);
        var up = Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "o2")) { UpdateGolden = true }));
        Assert.Equal([golden], up.GoldenWritten);
        var again = Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "o3"))));
        Assert.True(again.Status == PipelineStatus.Passed, string.Join("\n", again.Failures));
    }

    [Fact]
    public void AgainstTheFloatModelWhereTheGoldenHasFloatOutput()
    {
        using var d = new PipelineDir();
        var src = SafeTensorsFile.Open(Path.Combine(Models, "seed_convnet.safetensors")).ReadAll().ToList();
        var output = src.Single(t => t.Name == "output").Tensor.ToFloat32();
        var f = (float[])output.AsSpan<float>().ToArray();
        for (int i = 0; i < f.Length; i++) f[i] += (i % 7 - 3) * 0.001f;   // a float model close to the quantized one
        SafeTensorsFile.Write(Path.Combine(d.Dir, "golden.safetensors"), [.. src, ("float_output", new Tensor(DType.Float32, output.Shape, f))]);
        var def = d.Valid($$$"""
            jobs:
              - name: f
                models: "{{{Models}}}/seed_convnet.torchscript.pt"
                inputs: [{file: golden.safetensors, tensors: [input]}]
                steps:
                  - run
                  - compare: {against: {golden: golden.safetensors}, tensor: float_output, layers: false, min_sqnr: 30}
                  - assert:
                      - {metric: compare.sqnr, min: 30}
                      - {metric: compare.first_diverging_layer}
            """);
        var r = Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "out"))));
        Assert.True(r.Status == PipelineStatus.Passed, string.Join("\n", r.Failures));
        var row = Assert.Single(r.Steps.Single(s => s.Step == "compare").Layers!);
        Assert.Equal("output", row.Layer);
        Assert.True(row.Sqnr is > 30 and < 200);
    }

    [Fact]
    public void AgainstAnotherEngineGivesPerLayerMetrics()
    {
        using var d = new PipelineDir();
        var def = d.Valid($$$"""
            jobs:
              - name: e
                models: "{{{Models}}}/seed_convnet.torchscript.pt"
                engines: [x86, qnnpack]
                inputs: [{file: "{{{Models}}}/seed_convnet.safetensors", tensors: [input]}]
                steps:
                  - run
                  - compare: {against: {engine: x86}, min_sqnr: 20, layer_map: {conv1: conv1}}
                  - assert:
                      - {metric: compare.sqnr, min: 20}
                      - {metric: compare.sqnr, layer: conv3, min: 100}
                      - {metric: compare.max_lsb, engine: qnnpack, max: 100}
            """);
        Assert.Equal(["qnnpack"], def.Jobs[0].Steps.OfType<CompareStep>().Single().Engines);
        var r = Assert.Single(RunAll(new PipelineRunner(def.Jobs, Path.Combine(d.Dir, "out"))));
        var cmp = r.Steps.Single(s => s.Step == "compare");
        Assert.All(cmp.Layers!, l => Assert.Equal("qnnpack", l.Engine));
        Assert.Equal("x86", cmp.Layers![0].Against);
        Assert.True(cmp.Metrics["qnnpack.sqnr"] is > 20 and < 100);
        Assert.True(cmp.Metrics["qnnpack.max_lsb"] > 0);
        // only the conv3 threshold is out of reach
        var failure = Assert.Single(r.Failures);
        Assert.Equal(("compare.sqnr", "conv3", "qnnpack"), (failure.Metric, failure.Layer, failure.Engine));
    }
}
