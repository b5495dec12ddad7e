using QuantTools.Core.Pipelines;

namespace QuantTools.Core.Tests.Pipelines;

/// <summary>A temporary folder with a pipeline file and some (dummy or real) files next to it.</summary>
internal sealed class PipelineDir : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("qt-pipeline-").FullName;

    public PipelineDir(params string[] files)
    {
        foreach (var f in files) Touch(f);
    }

    public string Touch(string name, string content = "x")
    {
        var p = Path.Combine(Dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        File.WriteAllText(p, content);
        return p;
    }

    public string Copy(string from, string name)
    {
        var p = Path.Combine(Dir, name);
        File.Copy(from, p, overwrite: true);
        return p;
    }

    public (PipelineDefinition? Def, IReadOnlyList<PipelineError> Errors) Parse(string yaml)
    {
        var file = Touch("jobs.yaml", yaml);
        return PipelineParser.TryLoad(file);
    }

    public PipelineDefinition Valid(string yaml)
    {
        var (def, errors) = Parse(yaml);
        Assert.True(errors.Count == 0, string.Join("\n", errors));
        return def!;
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

public class PipelineParserTests
{
    private static PipelineError Single(IReadOnlyList<PipelineError> errors, string contains)
    {
        var hit = errors.Where(e => e.Message.Contains(contains, StringComparison.Ordinal)).ToList();
        Assert.True(hit.Count == 1, $"expected one error containing '{contains}', got:\n{string.Join("\n", errors)}");
        return hit[0];
    }

    [Fact]
    public void TensorNamesInInputAndGoldenFilesAreChecked()
    {
        using var d = new PipelineDir();
        d.Copy(Fixtures.Core("models", "seed_convnet.safetensors"), "g.safetensors");
        d.Copy(Fixtures.Core("models", "seed_convnet.torchscript.pt"), "m.pt");
        var (def, errors) = d.Parse("""
            jobs:
              - name: a
                models: m.pt
                inputs:
                  - {file: g.safetensors, tensors: [inptu]}
                  - {file: g.safetensors, tensors: ["act/*"]}
                steps:
                  - run
                  - assert:
                      - {metric: output.equal, golden: g.safetensors, tensor: outptu}
                      - {metric: output.equal, golden: g.safetensors}
            """);
        Assert.Null(def);
        var e = Single(errors, "matches 'inptu'");
        Assert.Equal(5, e.Line);
        Assert.Contains("inputs.tensors: no tensor in 'g.safetensors' matches 'inptu'; it holds ", e.Message);
        Assert.Contains("input", e.Message);
        var g = Single(errors, "matches 'outptu'");
        Assert.Equal(10, g.Line);
        Assert.DoesNotContain(errors, x => x.Message.Contains("'act/*'"));
        // the golden has input, output, ...: without 'tensor' the output is taken, which it has
        Assert.DoesNotContain(errors, x => x.Message.Contains("none is named 'output'"));
        Assert.Equal(2, errors.Count);
    }

    [Fact]
    public void UnknownKeyIsReportedWithLineColumnAndTheExpectedKeys()
    {
        using var d = new PipelineDir("m.pt");
        var (def, errors) = d.Parse("""
            jobs:
              - name: a
                modles: m.pt
                steps: [lint]
            """);
        Assert.Null(def);
        var e = Single(errors, "unknown key 'modles'");
        Assert.Equal((3, 5), (e.Line, e.Column));
        Assert.Contains("expected one of name, models, inputs", e.Message);
        Assert.EndsWith("jobs.yaml", e.File);
        Assert.StartsWith(e.File + ":3:5: ", e.ToString());
    }

    [Fact]
    public void EveryProblemIsReportedBeforeAnythingRuns()
    {
        using var d = new PipelineDir("m.pt");
        var (def, errors) = d.Parse("""
            jobs:
              - name: a
                models: missing.pt
                engine: [x86]
                steps:
                  - lint: {engine: tpu}
                  - frobnicate
                  - assert:
                      - {metric: output.equal, golden: nope.safetensors}
                      - {metric: lint.errors}
              - name: b
                models: m.pt
                inputs:
                  - random: {shape: [2, x], seed: 1}
                steps:
                  - calibrate: {observer: MinMaxObserver, qscheme: per_channel_affine}
            """);
        Assert.Null(def);
        var where = errors.Select(e => (e.Line, e.Column, e.Message)).ToList();
        Assert.Equal((3, 13), (Single(errors, "file 'missing.pt' does not exist").Line, Single(errors, "file 'missing.pt' does not exist").Column));
        Assert.Equal(4, Single(errors, "engine must be a single value").Line);
        Assert.Equal(6, Single(errors, "'tpu' is not one of").Line);
        Assert.Equal(7, Single(errors, "unknown step 'frobnicate'").Line);
        Assert.Equal(9, Single(errors, "needs an earlier 'run' step").Line);
        Assert.Equal(9, Single(errors, "file 'nope.safetensors' does not exist").Line);
        Assert.Equal(10, Single(errors, "needs a threshold").Line);
        Assert.Equal(14, Single(errors, "expected an integer, found 'x'").Line);
        Assert.Equal(16, Single(errors, "MinMaxObserver's qscheme only support").Line);
        Assert.True(errors.Count >= 9);
        Assert.Equal(errors.OrderBy(e => e.Line).ThenBy(e => e.Column), errors); // sorted by place
    }

    [Fact]
    public void SyntaxErrorsAndWrongTypesGivePlaces()
    {
        using var d = new PipelineDir();
        var (_, errors) = d.Parse("jobs:\n  - name: a\n    steps: [lint\n");
        Assert.Single(errors);
        Assert.True(errors[0].Line >= 3, errors[0].ToString());

        (_, errors) = d.Parse("jobs: {name: a}\n");
        Assert.Equal(1, Single(errors, "'jobs' must be a non-empty list").Line);

        (_, errors) = d.Parse("jobs:\n  - name: a\n    inputs:\n      - random: {shape: [1, 2], seed: 1.5}\n    steps: [{calibrate: {reduce_range: maybe}}]\n");
        Assert.Equal(4, Single(errors, "expected an integer, found '1.5'").Line);
        Assert.Equal(5, Single(errors, "expected true or false, found 'maybe'").Line);
    }

    [Fact]
    public void StepsCheckWhatTheyNeed()
    {
        using var d = new PipelineDir("m.pt");
        var (_, errors) = d.Parse("""
            jobs:
              - name: a
                steps:
                  - qparams
                  - run
                  - quantize
                  - assert:
                      - {metric: qparams.OutputScale, equals: 1}
            """);
        Single(errors, "step 'qparams' needs the job's models");
        Single(errors, "step 'run' needs the job's inputs");
        Single(errors, "quantize: needs scale");
        Single(errors, "metric 'qparams.OutputScale' needs 'layer'");
    }

    [Fact]
    public void OutputsMustNameAStepThatWritesThatKindOfFile()
    {
        using var d = new PipelineDir("m.pt");
        var (_, errors) = d.Parse("""
            jobs:
              - name: a
                models: m.pt
                steps: [qparams, lint]
                outputs: {qparams: table.txt, run: out.safetensors, lint: ../x.json}
            """);
        Single(errors, "'table.txt' must end with .csv or .json");
        Single(errors, "'run' is not a step of this job");
        Single(errors, "must be a plain relative file name");
    }

    [Fact]
    public void VariablesAndTheMatrixExpandJobsDeterministically()
    {
        using var d = new PipelineDir("models/a.pt", "models/b.pt", "models/c.pt");
        const string yaml = """
            name: demo
            variables:
              root: models
              ext: pt
            jobs:
              - name: eval
                matrix:
                  engine: [x86, qnnpack]
                  model: [a, b, c]
                models: ${root}/${model}.${ext}
                engine: ${engine}
                steps: [lint]
              - name: all
                models: ${root}/*.pt
                steps: [qparams]
            """;
        var def = d.Valid(yaml);
        Assert.Equal("demo", def.Name);
        Assert.Equal(
            ["eval[engine=x86,model=a]", "eval[engine=x86,model=b]", "eval[engine=x86,model=c]",
             "eval[engine=qnnpack,model=a]", "eval[engine=qnnpack,model=b]", "eval[engine=qnnpack,model=c]",
             "all/a.pt", "all/b.pt", "all/c.pt"],
            def.Jobs.Select(j => j.Id));
        Assert.Equal(Enumerable.Range(0, 9), def.Jobs.Select(j => j.Index));
        var j4 = def.Jobs[4];
        Assert.Equal(["qnnpack"], j4.Engines);
        Assert.Equal(Path.Combine(d.Dir, "models", "b.pt"), j4.Model);
        Assert.Equal("models/b.pt", j4.ModelName);
        Assert.Equal("qnnpack", j4.Matrix["engine"]);
        // the same file gives the same jobs
        Assert.Equal(def.Jobs.Select(j => j.Definition), d.Valid(yaml).Jobs.Select(j => j.Definition));
    }

    [Fact]
    public void UnknownVariablesAndDuplicateJobsAreErrors()
    {
        using var d = new PipelineDir("m.pt");
        var (_, errors) = d.Parse("""
            variables: {dir: .}
            jobs:
              - name: a
                models: ${dri}/m.pt
                steps: [lint]
              - name: a
                models: m.pt
                steps: [lint]
            """);
        var e = Single(errors, "unknown variable '${dri}'");
        Assert.Equal((4, 13), (e.Line, e.Column));
        Assert.Contains("defined: dir", e.Message);
        Single(errors, "job id 'a' is used twice");
    }

    [Fact]
    public void ShardsAreDisjointCoverEveryJobAndAreStable()
    {
        using var d = new PipelineDir();
        for (int i = 0; i < 11; i++) d.Touch($"m/ck{i:00}.pt");
        var def = d.Valid("""
            jobs:
              - name: qp
                matrix: {engine: [x86, qnnpack]}
                models: m/*.pt
                engine: ${engine}
                steps: [qparams]
            """);
        Assert.Equal(22, def.Jobs.Count);
        foreach (var n in new[] { 1, 2, 3, 4, 7, 30 })
        {
            var shards = Enumerable.Range(1, n).Select(i => PipelineShard.Select(def.Jobs, i, n)).ToList();
            var all = shards.SelectMany(s => s.Select(j => j.Id)).ToList();
            Assert.Equal(all.Count, all.Distinct().Count());                       // disjoint
            Assert.Equal(def.Jobs.Select(j => j.Id).Order(), all.Order());        // union = every job
            Assert.True(shards.Max(s => s.Count) - shards.Min(s => s.Count) <= 1); // balanced
            foreach (var s in shards) Assert.Equal(s.OrderBy(j => j.Index), s);     // in job order
            // the same split again
            Assert.Equal(shards[0].Select(j => j.Id), PipelineShard.Select(d.Valid(File.ReadAllText(Path.Combine(d.Dir, "jobs.yaml"))).Jobs, 1, n).Select(j => j.Id));
        }
        Assert.Equal((2, 4), PipelineShard.Parse("2/4"));
        Assert.Throws<QuantToolsException>(() => PipelineShard.Parse("5/4"));
        Assert.Throws<QuantToolsException>(() => PipelineShard.Parse("0/4"));
    }

    [Fact]
    public void InputHashFollowsTheJobDefinitionAndFileContents()
    {
        using var d = new PipelineDir("a.pt", "b.pt", "in.npy");
        string Yaml(string scaleA, string scaleB) => $$"""
            jobs:
              - name: a
                models: a.pt
                inputs: [in.npy]
                steps:
                  - quantize: {scale: {{scaleA}}}
              - name: b
                models: b.pt
                inputs: [in.npy]
                steps:
                  - quantize: {scale: {{scaleB}}}
            """;
        string[] Hashes(string yaml) => d.Valid(yaml).Jobs.Select(j => PipelineHash.InputHash(j)).ToArray();
        var h0 = Hashes(Yaml("0.1", "0.2"));
        Assert.Equal(h0, Hashes(Yaml("0.1", "0.2")));                   // stable
        var h1 = Hashes(Yaml("0.1", "0.3"));
        Assert.Equal(h0[0], h1[0]);                                       // another job changed: same hash
        Assert.NotEqual(h0[1], h1[1]);                                    // this job changed
        d.Touch("a.pt", "y");
        var h2 = Hashes(Yaml("0.1", "0.3"));
        Assert.NotEqual(h1[0], h2[0]);                                    // its model's bytes changed
        Assert.Equal(h1[1], h2[1]);
        d.Touch("in.npy", "z");
        var h3 = Hashes(Yaml("0.1", "0.3"));
        Assert.NotEqual(h2[0], h3[0]);                                    // an input changed
        Assert.NotEqual(h2[1], h3[1]);
        // comments and formatting do not change a job
        Assert.Equal(h3, Hashes("# a comment\n" + Yaml("0.1", "0.3").Replace("{scale: 0.1}", "{ scale: 0.1 }")));
    }

    [Fact]
    public void StepKindsAreDiscoveredFromTheirClasses()
    {
        Assert.Equal(["assert", "calibrate", "compare", "lint", "qparams", "quantize", "run"], PipelineSteps.Kinds);
        Assert.IsType<LintStep>(PipelineSteps.Create("lint"));
        Assert.IsType<CompareStep>(PipelineSteps.Create("compare"));
        Assert.Null(PipelineSteps.Create("diff"));
    }
}
