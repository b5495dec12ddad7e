using System.Security.Cryptography;
using System.Text;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace QuantTools.Core.Pipelines;

/// <summary>
/// Reads a pipeline file (YamlDotNet's representation model: plain YAML, no type tags, no code), substitutes variables,
/// expands each job's matrix and models into <see cref="PipelineJob"/>s, and validates everything (unknown keys, wrong
/// types, missing files, steps that need a model, inputs or an earlier step) before anything runs. Every problem is
/// collected with file:line:column and what was expected.
/// <code>
/// variables: {models: ../../tests/fixtures/golden/pytorch-2.11/core/models}
/// jobs:
///   - name: convnet
///     matrix: {engine: [x86, qnnpack]}
///     models: ${models}/seed_convnet.torchscript.pt
///     engine: ${engine}
///     inputs: [{file: ${models}/seed_convnet.safetensors, tensors: input}]
///     steps:
///       - qparams
///       - lint
///       - run
///       - assert:
///           - {metric: lint.errors, max: 0}
///           - {metric: output.max_diff_lsb, golden: ${models}/seed_convnet.safetensors, tensor: output, max: 0}
/// </code>
/// </summary>
public static class PipelineParser
{
    public static readonly IReadOnlyList<string> EngineNames = ["x86", "fbgemm", "qnnpack", "onednn", "fbgemm-avx2"];
    public static readonly IReadOnlyList<string> TopKeys = ["name", "variables", "jobs"];
    public static readonly IReadOnlyList<string> JobKeys = ["name", "models", "inputs", "engine", "engines", "architecture", "matrix", "steps", "outputs"];
    public static readonly IReadOnlyList<string> InputKeys = ["file", "tensors", "random"];
    public static readonly IReadOnlyList<string> RandomKeys = ["shape", "seed", "distribution", "mean", "std", "low", "high"];

    /// <summary>Reads and validates <paramref name="path"/>; any problem throws one exception listing them all.</summary>
    public static PipelineDefinition Load(string path)
    {
        var (def, errors) = TryLoad(path);
        if (errors.Count > 0) throw new QuantToolsException(ErrorCode.InvalidArgument, Describe(errors));
        return def!;
    }

    public static string Describe(IReadOnlyList<PipelineError> errors) =>
        $"{errors.Count} problem(s) in the pipeline file:" + Environment.NewLine + string.Join(Environment.NewLine, errors);

    public static (PipelineDefinition? Definition, IReadOnlyList<PipelineError> Errors) TryLoad(string path)
    {
        var full = Path.GetFullPath(path);
        string text;
        try { text = File.ReadAllText(full); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, full, e);
        }
        return TryParse(text, full, Path.GetDirectoryName(full)!);
    }

    /// <summary>Parses pipeline YAML; relative paths in it are resolved against <paramref name="baseDir"/>.</summary>
    public static (PipelineDefinition? Definition, IReadOnlyList<PipelineError> Errors) TryParse(string yaml, string source, string baseDir)
    {
        var errors = new List<PipelineError>();
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlException e)
        {
            errors.Add(new PipelineError(source, (int)e.Start.Line, (int)e.Start.Column, e.Message));
            return (null, errors);
        }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            errors.Add(new PipelineError(source, 1, 1, "expected one YAML mapping with 'jobs' (and optionally 'name', 'variables')"));
            return (null, errors);
        }
        var top = Children(root, source, errors, TopKeys, "the pipeline");
        var vars = new Dictionary<string, string>(StringComparer.Ordinal);
        var topCtx = new YamlContext(source, baseDir, vars, errors);
        string? name = top.TryGetValue("name", out var nn) ? topCtx.Text(nn.Value, "name") : null;
        if (top.TryGetValue("variables", out var vn))
        {
            if (vn.Value is not YamlMappingNode vm) topCtx.Error(vn.Value, "'variables' must be a mapping of name: value");
            else
                foreach (var (k, v) in vm.Children)
                {
                    var key = ((YamlScalarNode)k).Value ?? "";
                    if (!IsVariableName(key)) { topCtx.Error(k, $"variable name '{key}' must be letters, digits and _ (starting with a letter or _)"); continue; }
                    // earlier variables can be used in later ones
                    if (topCtx.Text(v, $"variables.{key}") is { } value) vars[key] = value;
                }
        }
        var jobs = new List<PipelineJob>();
        if (!top.TryGetValue("jobs", out var jn)) errors.Add(new PipelineError(source, (int)root.Start.Line, (int)root.Start.Column, "the key 'jobs' is required (a list of jobs)"));
        else if (jn.Value is not YamlSequenceNode js || js.Children.Count == 0) topCtx.Error(jn.Value, "'jobs' must be a non-empty list of jobs");
        else
            foreach (var jobNode in js.Children)
            {
                if (jobNode is not YamlMappingNode jm) { topCtx.Error(jobNode, "a job must be a mapping (name, models, inputs, steps, ...)"); continue; }
                jobs.AddRange(ExpandJob(jm, source, baseDir, vars, errors));
            }
        var seen = new Dictionary<string, PipelineJob>(StringComparer.Ordinal);
        foreach (var j in jobs)
            if (!seen.TryAdd(j.Id, j))
                errors.Add(new PipelineError(source, j.Line, 1, $"job id '{j.Id}' is used twice (first at line {seen[j.Id].Line}); job names must be unique"));
        var distinct = errors.Distinct().OrderBy(e => e.Line).ThenBy(e => e.Column).ToList();
        if (distinct.Count > 0) return (null, distinct);
        for (int i = 0; i < jobs.Count; i++) jobs[i].Index = i;
        return (new PipelineDefinition { Source = source, Name = name, Jobs = jobs }, []);
    }

    private static bool IsVariableName(string s) =>
        s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '_') && s.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    private static Dictionary<string, (YamlScalarNode Key, YamlNode Value)> Children(YamlMappingNode m, string source, List<PipelineError> errors,
        IReadOnlyList<string> allowed, string what)
    {
        var d = new Dictionary<string, (YamlScalarNode, YamlNode)>(StringComparer.Ordinal);
        foreach (var (k, v) in m.Children)
        {
            var key = (k as YamlScalarNode)?.Value ?? "";
            if (!allowed.Contains(key))
                errors.Add(new PipelineError(source, (int)k.Start.Line, (int)k.Start.Column, $"{what}: unknown key '{key}'; expected one of {string.Join(", ", allowed)}"));
            else if (!d.TryAdd(key, ((YamlScalarNode)k, v)))
                errors.Add(new PipelineError(source, (int)k.Start.Line, (int)k.Start.Column, $"{what}: the key '{key}' is given twice"));
        }
        return d;
    }

    private static IEnumerable<PipelineJob> ExpandJob(YamlMappingNode jm, string source, string baseDir, Dictionary<string, string> topVars, List<PipelineError> errors)
    {
        var f = Children(jm, source, errors, JobKeys, "job");
        var topCtx = new YamlContext(source, baseDir, topVars, errors);
        // the matrix: key -> values, expanded in the order written (first key outermost)
        var axes = new List<(string Key, List<string> Values)>();
        if (f.TryGetValue("matrix", out var mx))
        {
            if (mx.Value is not YamlMappingNode mm || mm.Children.Count == 0) topCtx.Error(mx.Value, "'matrix' must be a mapping of name: [values]");
            else
                foreach (var (k, v) in mm.Children)
                {
                    var key = ((YamlScalarNode)k).Value ?? "";
                    if (!IsVariableName(key)) { topCtx.Error(k, $"matrix name '{key}' must be letters, digits and _"); continue; }
                    if (topVars.ContainsKey(key)) { topCtx.Error(k, $"matrix name '{key}' is also a top-level variable; rename one"); continue; }
                    var values = topCtx.List(v, $"matrix.{key}");
                    if (values is null) continue;
                    if (values.Count == 0) { topCtx.Error(v, $"matrix.{key} has no values"); continue; }
                    var list = values.Select(x => x.Text).ToList();
                    if (list.Distinct().Count() != list.Count) topCtx.Error(v, $"matrix.{key} lists a value twice");
                    axes.Add((key, list));
                }
        }
        var combos = new List<List<(string, string)>> { new() };
        foreach (var (key, values) in axes)
            combos = combos.SelectMany(c => values.Select(v => new List<(string, string)>(c) { (key, v) })).ToList();
        foreach (var combo in combos)
        {
            var vars = new Dictionary<string, string>(topVars, StringComparer.Ordinal);
            foreach (var (k, v) in combo) vars[k] = v;
            foreach (var j in ParseJob(jm, f, combo, new YamlContext(source, baseDir, vars, errors))) yield return j;
        }
    }

    private static List<PipelineJob> ParseJob(YamlMappingNode jm, Dictionary<string, (YamlScalarNode Key, YamlNode Value)> f,
        List<(string Key, string Value)> combo, YamlContext ctx)
    {
        string? name = null;
        if (!f.TryGetValue("name", out var nn)) ctx.Error(jm, "a job needs 'name'");
        else if ((name = ctx.Text(nn.Value, "name")) is { Length: 0 }) { ctx.Error(nn.Value, "the job name is empty"); name = null; }
        name ??= $"job@{jm.Start.Line}";

        var engines = new List<string>();
        if (f.TryGetValue("engine", out var en) && f.TryGetValue("engines", out var ens))
            ctx.Error(ens.Key, "give either 'engine' or 'engines', not both");
        var engineItems = f.TryGetValue("engines", out ens) ? ctx.List(ens.Value, "engines")
            : f.TryGetValue("engine", out en) ? (ctx.Text(en.Value, "engine") is { } et ? [(et, en.Value)] : null) : null;
        foreach (var (t, n) in engineItems ?? [])
        {
            var e = EngineNames.FirstOrDefault(x => string.Equals(x, t, StringComparison.OrdinalIgnoreCase));
            if (e is null) ctx.Error(n, $"unknown engine '{t}'; expected one of {string.Join(", ", EngineNames)}");
            else if (!engines.Contains(e)) engines.Add(e);
        }
        if (engines.Count == 0) engines.Add("x86");

        string? arch = f.TryGetValue("architecture", out var an) ? ctx.File(an.Value, "architecture") : null;
        var files = new List<string>();

        var inputs = new List<PipelineInput>();
        if (f.TryGetValue("inputs", out var inn)) inputs = ParseInputs(ctx, inn.Value, files);

        var models = new List<string>();
        if (f.TryGetValue("models", out var mn) && ctx.List(mn.Value, "models") is { } ml)
            foreach (var (t, n) in ml)
                foreach (var file in ctx.Files(n, t, "models"))
                    if (!models.Contains(file)) models.Add(file);
        bool hasModel = f.ContainsKey("models");
        if (arch is not null && !hasModel) ctx.Error(an.Key, "'architecture' goes with 'models' (an eager state_dict)");

        var plan = new JobPlan { Name = name, HasModel = hasModel, HasArchitecture = arch is not null, HasInputs = f.ContainsKey("inputs"), Engines = engines };
        if (!f.TryGetValue("steps", out var sn)) ctx.Error(jm, "a job needs 'steps' (a list: qparams, lint, calibrate, quantize, run, assert)");
        else if (sn.Value is not YamlSequenceNode seq || seq.Children.Count == 0) ctx.Error(sn.Value, "'steps' must be a non-empty list");
        else
            foreach (var item in seq.Children)
            {
                string? kind;
                YamlNode? value = null;
                if (item is YamlScalarNode s) kind = ctx.Text(s, "step");
                else if (item is YamlMappingNode m && m.Children.Count == 1)
                {
                    var (k, v) = m.Children.First();
                    kind = ((YamlScalarNode)k).Value;
                    value = v;
                }
                else { ctx.Error(item, $"a step is a name or a mapping with one key: {string.Join(", ", PipelineSteps.Kinds)}"); continue; }
                var step = kind is null ? null : PipelineSteps.Create(kind);
                if (step is null)
                {
                    ctx.Error(item, $"unknown step '{kind}'; expected one of {string.Join(", ", PipelineSteps.Kinds)}");
                    continue;
                }
                step.Configure(new StepArgs(ctx, plan, item, value, kind!));
                plan.Earlier.Add(step);
            }

        var outputs = new Dictionary<string, string>(StringComparer.Ordinal);
        if (f.TryGetValue("outputs", out var on))
        {
            if (on.Value is not YamlMappingNode om) ctx.Error(on.Value, "'outputs' must be a mapping of step: file name (e.g. qparams: qparams.csv)");
            else
                foreach (var (k, v) in om.Children)
                {
                    var kind = ((YamlScalarNode)k).Value ?? "";
                    var file = ctx.Text(v, $"outputs.{kind}");
                    var step = plan.Earlier.FirstOrDefault(x => x.Kind == kind);
                    var writers = plan.Earlier.Where(x => x.OutputExtensions.Count > 0).Select(x => x.Kind).Distinct().ToList();
                    if (step is null) { ctx.Error(k, $"outputs: '{kind}' is not a step of this job; steps that write files: {(writers.Count == 0 ? "none" : string.Join(", ", writers))}"); continue; }
                    if (step.OutputExtensions.Count == 0) { ctx.Error(k, $"outputs: step '{kind}' writes no file"); continue; }
                    if (file is null) continue;
                    if (file.Length == 0 || Path.IsPathRooted(file) || file.Split('/', '\\').Any(p => p is ".." or "") )
                    { ctx.Error(v, $"outputs.{kind}: '{file}' must be a plain relative file name (it goes under the job's output folder)"); continue; }
                    if (!step.OutputExtensions.Any(x => file.EndsWith(x, StringComparison.OrdinalIgnoreCase)))
                    { ctx.Error(v, $"outputs.{kind}: '{file}' must end with {string.Join(" or ", step.OutputExtensions)}"); continue; }
                    if (outputs.ContainsValue(file)) { ctx.Error(v, $"outputs.{kind}: '{file}' is named twice"); continue; }
                    outputs[kind] = file;
                }
        }

        if (arch is not null) files.Add(arch);
        files.AddRange(plan.Files);
        var matrix = combo.ToDictionary(x => x.Key, x => x.Value, StringComparer.Ordinal);
        var matrixText = combo.Count == 0 ? "" : "[" + string.Join(",", combo.Select(x => $"{x.Key}={x.Value}")) + "]";
        var definition = ctx.Canonical(jm) + matrixText;
        var result = new List<PipelineJob>();
        foreach (var model in models.Count == 0 ? [null] : models.Cast<string?>())
        {
            var rel = model is null ? null : Path.GetRelativePath(ctx.BaseDir, model).Replace('\\', '/');
            var id = name + matrixText + (models.Count > 1 ? "/" + Path.GetFileName(model) : "");
            if (models.Count > 1 && models.Count(m => Path.GetFileName(m) == Path.GetFileName(model)) > 1) id = name + matrixText + "/" + rel;
            var jobFiles = new List<string>();
            if (model is not null) jobFiles.Add(model);
            jobFiles.AddRange(files);
            result.Add(new PipelineJob
            {
                Id = id, Name = name, Model = model, ModelName = rel, Architecture = arch, Engines = engines, Matrix = matrix,
                Inputs = inputs, Steps = plan.Earlier.ToList(), Outputs = outputs, Definition = definition + "|model=" + rel,
                Files = jobFiles, Source = ctx.Source, Line = (int)jm.Start.Line,
            });
        }
        return result;
    }

    private static List<PipelineInput> ParseInputs(YamlContext ctx, YamlNode node, List<string> files)
    {
        var list = new List<PipelineInput>();
        IEnumerable<YamlNode> items = node switch
        {
            YamlSequenceNode s => s.Children,
            YamlScalarNode or YamlMappingNode => [node],
            _ => [],
        };
        foreach (var item in items)
        {
            if (item is YamlScalarNode s)
            {
                var t = ctx.Substitute(s);
                foreach (var file in ctx.Files(s, t, "inputs")) { list.Add(new PipelineInput { File = file }); files.Add(file); }
                continue;
            }
            if (item is not YamlMappingNode m) { ctx.Error(item, "an input is a file path, {file: ..., tensors: [...]} or {random: {shape: [...], seed: N}}"); continue; }
            var f = Children(m, ctx.Source, ctx.Errors, InputKeys, "input");
            if (f.ContainsKey("file") == f.ContainsKey("random")) { ctx.Error(m, "an input needs either 'file' or 'random'"); continue; }
            if (f.TryGetValue("file", out var fn))
            {
                var t = ctx.Text(fn.Value, "inputs.file");
                if (t is null) continue;
                var names = f.TryGetValue("tensors", out var tn) ? (ctx.List(tn.Value, "inputs.tensors") ?? []).Select(x => x.Text).ToList() : [];
                foreach (var file in ctx.Files(fn.Value, t, "inputs.file"))
                {
                    // a misspelt tensor name fails here, before anything runs
                    if (f.TryGetValue("tensors", out var tnode)) ctx.CheckTensorNames(tnode.Value, file, names, "inputs.tensors");
                    list.Add(new PipelineInput { File = file, Tensors = names });
                    files.Add(file);
                }
                continue;
            }
            if (f.TryGetValue("tensors", out var tk)) ctx.Error(tk.Key, "inputs: 'tensors' goes with 'file'");
            var rn = f["random"].Value;
            if (rn is not YamlMappingNode rm) { ctx.Error(rn, "random: expected a mapping (shape, seed, distribution, ...)"); continue; }
            var r = Children(rm, ctx.Source, ctx.Errors, RandomKeys, "random");
            int[]? shape = null;
            if (!r.TryGetValue("shape", out var sh)) ctx.Error(rm, "random: 'shape' is required, e.g. shape: [1, 3, 20, 20]");
            else if (sh.Value is not YamlSequenceNode sq || sq.Children.Count == 0) ctx.Error(sh.Value, "random.shape: expected a list of sizes, e.g. [1, 3, 20, 20]");
            else
            {
                var dims = sq.Children.Select(c => ctx.Long(c, "random.shape")).ToList();
                if (dims.All(d => d is not null))
                {
                    if (dims.Any(d => d < 1 || d > int.MaxValue)) ctx.Error(sh.Value, "random.shape: sizes must be positive");
                    else if (dims.Aggregate(1L, (a, d) => a > (1L << 31) ? a : a * d!.Value) > (1L << 28)) ctx.Error(sh.Value, "random.shape: more than 2^28 values");
                    else shape = dims.Select(d => (int)d!.Value).ToArray();
                }
            }
            long seed = r.TryGetValue("seed", out var sd) ? ctx.Long(sd.Value, "random.seed") ?? 0 : 0;
            var dist = r.TryGetValue("distribution", out var dn) ? ctx.Text(dn.Value, "random.distribution")?.ToLowerInvariant() : "normal";
            if (dist is not null and not ("normal" or "uniform")) { ctx.Error(dn.Value, $"random.distribution: '{dist}' is not normal or uniform"); dist = "normal"; }
            dist ??= "normal";
            double D(string key, double fallback) => r.TryGetValue(key, out var x) ? ctx.Double(x.Value, "random." + key) ?? fallback : fallback;
            foreach (var key in dist == "normal" ? new[] { "low", "high" } : ["mean", "std"])
                if (r.TryGetValue(key, out var bad)) ctx.Error(bad.Key, $"random.{key} does not apply to the {dist} distribution");
            var (a, b) = dist == "normal" ? (D("mean", 0), D("std", 1)) : (D("low", 0), D("high", 1));
            if (dist == "normal" && b < 0) ctx.Error(rm, "random.std must not be negative");
            if (dist == "uniform" && b < a) ctx.Error(rm, "random.high must not be below random.low");
            if (shape is not null) list.Add(new PipelineInput { RandomShape = shape, RandomSeed = seed, Distribution = dist, A = a, B = b });
        }
        return list;
    }
}

/// <summary>Stable names and hashes for jobs.</summary>
public static class PipelineHash
{
    /// <summary>A file-system-safe, readable and unique name for a job id.</summary>
    public static string SafeName(string id)
    {
        var sb = new StringBuilder();
        foreach (var c in id) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_');
        var s = sb.ToString();
        if (s.Length > 80) s = s[..80];
        return s + "-" + Hex(SHA256.HashData(Encoding.UTF8.GetBytes(id)))[..8];
    }

    /// <summary>
    /// The job's input hash: its definition after substitution and the contents of every file it reads (paths relative
    /// to the pipeline file, so a checkout in another folder gives the same hash).
    /// </summary>
    public static string InputHash(PipelineJob job, Func<string, string>? fileHash = null)
    {
        fileHash ??= FileHash;
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s) { h.AppendData(Encoding.UTF8.GetBytes(s)); h.AppendData([0]); }
        Add("quanttools-pipeline-1");
        Add(job.Id);
        Add(job.Definition);
        var baseDir = Path.GetDirectoryName(job.Source)!;
        foreach (var f in job.Files.Distinct())
        {
            Add(Path.GetRelativePath(baseDir, f).Replace('\\', '/'));
            Add(fileHash(f));
        }
        return Hex(h.GetHashAndReset());
    }

    /// <summary>SHA-256 of a file's contents (hex).</summary>
    public static string FileHash(string path)
    {
        try
        {
            using var s = File.OpenRead(path);
            return Hex(SHA256.HashData(s));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return "<unreadable>"; }
    }

    internal static string Hex(byte[] b) => Convert.ToHexString(b).ToLowerInvariant();
}

/// <summary>Deterministic partitions of the expanded job list.</summary>
public static class PipelineShard
{
    /// <summary>Parses "i/n" (1 &lt;= i &lt;= n).</summary>
    public static (int Index, int Count) Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out var i) && int.TryParse(parts[1], out var n) && n >= 1 && i >= 1 && i <= n) return (i, n);
        throw new QuantToolsException(ErrorCode.InvalidArgument, $"-Shard '{text}': expected i/n with 1 <= i <= n, e.g. 1/4");
    }

    /// <summary>
    /// Shard <paramref name="index"/> of <paramref name="count"/> (1-based): the jobs sorted by id (ordinal), every
    /// count-th one starting at index-1. Shards are disjoint, their union is every job, and sizes differ by at most one.
    /// </summary>
    public static IReadOnlyList<PipelineJob> Select(IReadOnlyList<PipelineJob> jobs, int index, int count)
    {
        if (count < 1 || index < 1 || index > count) throw new QuantToolsException(ErrorCode.InvalidArgument, $"shard {index}/{count} does not exist");
        var chosen = jobs.OrderBy(j => j.Id, StringComparer.Ordinal).Where((_, i) => i % count == index - 1).ToHashSet();
        return jobs.Where(chosen.Contains).ToList();
    }
}
