using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace QuantTools.Core.Pipelines;

/// <summary>
/// Reads YAML values of one expanded job: substitutes <c>${name}</c> variables in every scalar, converts types, resolves
/// file paths against the pipeline file's folder, and records every problem as a <see cref="PipelineError"/> with
/// line:column instead of stopping at the first one.
/// </summary>
public sealed partial class YamlContext
{
    internal YamlContext(string source, string baseDir, IReadOnlyDictionary<string, string> variables, List<PipelineError> errors)
    {
        Source = source;
        BaseDir = baseDir;
        Variables = variables;
        Errors = errors;
    }

    public string Source { get; }
    public string BaseDir { get; }
    public IReadOnlyDictionary<string, string> Variables { get; }
    internal List<PipelineError> Errors { get; }

    public void Error(Mark m, string message) => Errors.Add(new PipelineError(Source, (int)m.Line, (int)m.Column, message));
    public void Error(YamlNode node, string message) => Error(node.Start, message);

    [GeneratedRegex(@"\$\$\{|\$\{([^}]*)\}")]
    private static partial Regex VariableRef();

    /// <summary>The scalar's text with variables substituted; an error (and null) for a list or mapping.</summary>
    public string? Text(YamlNode node, string what)
    {
        if (node is not YamlScalarNode s)
        {
            Error(node, $"{what} must be a single value, found a {(node is YamlSequenceNode ? "list" : "mapping")}");
            return null;
        }
        return Substitute(s);
    }

    internal string Substitute(YamlScalarNode s)
    {
        var text = s.Value ?? "";
        if (!text.Contains('$')) return text;
        return VariableRef().Replace(text, m =>
        {
            if (m.Value == "$${") return "${";
            var name = m.Groups[1].Value.Trim();
            if (name.StartsWith("env:", StringComparison.Ordinal))
            {
                var v = Environment.GetEnvironmentVariable(name[4..]);
                if (v is null) Error(s, $"environment variable '{name[4..]}' (in '{text}') is not set");
                return v ?? "";
            }
            if (Variables.TryGetValue(name, out var value)) return value;
            Error(s, $"unknown variable '${{{name}}}'; defined: {(Variables.Count == 0 ? "none" : string.Join(", ", Variables.Keys.Order(StringComparer.Ordinal)))}");
            return "";
        });
    }

    public bool? Bool(YamlNode node, string what) => Text(node, what)?.ToLowerInvariant() switch
    {
        null => null,
        "true" or "yes" or "on" => true,
        "false" or "no" or "off" => false,
        var t => Fail<bool?>(node, $"{what}: expected true or false, found '{t}'"),
    };

    public long? Long(YamlNode node, string what)
    {
        var t = Text(node, what);
        if (t is null) return null;
        return long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
            : Fail<long?>(node, $"{what}: expected an integer, found '{t}'");
    }

    public double? Double(YamlNode node, string what)
    {
        var t = Text(node, what);
        if (t is null) return null;
        return ParseDouble(t, out var v) ? v : Fail<double?>(node, $"{what}: expected a number, found '{t}'");
    }

    internal static bool ParseDouble(string t, out double v)
    {
        switch (t.ToLowerInvariant())
        {
            case ".nan" or "nan": v = double.NaN; return true;
            case ".inf" or "inf" or "+.inf": v = double.PositiveInfinity; return true;
            case "-.inf" or "-inf": v = double.NegativeInfinity; return true;
        }
        return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out v);
    }

    /// <summary>A scalar or a list of scalars.</summary>
    public List<(string Text, YamlNode Node)>? List(YamlNode node, string what)
    {
        if (node is YamlScalarNode s) return [(Substitute(s), s)];
        if (node is YamlSequenceNode seq)
        {
            var r = new List<(string, YamlNode)>();
            foreach (var c in seq.Children)
                if (Text(c, what + " item") is { } t) r.Add((t, c));
            return r;
        }
        Error(node, $"{what} must be a value or a list of values, found a mapping");
        return null;
    }

    private T Fail<T>(YamlNode node, string message)
    {
        Error(node, message);
        return default!;
    }

    /// <summary>An existing file named relative to the pipeline file; an error when it is missing.</summary>
    public string? File(YamlNode node, string what)
    {
        var t = Text(node, what);
        if (t is null) return null;
        if (t.Length == 0) { Error(node, $"{what}: expected a file path, found an empty value"); return null; }
        var full = Path.GetFullPath(Path.Combine(BaseDir, t));
        if (System.IO.File.Exists(full)) return full;
        Error(node, $"{what}: file '{t}' does not exist (looked for {full})");
        return null;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string, DateTime, long), IReadOnlyList<string>> NamesCache = new();

    /// <summary>The tensor names a file holds (its header for .safetensors), cached while the file is unchanged; null (and an error) when it cannot be read.</summary>
    public IReadOnlyList<string>? TensorNames(YamlNode node, string file, string what)
    {
        try
        {
            var info = new FileInfo(file);
            return NamesCache.GetOrAdd((info.FullName, info.LastWriteTimeUtc, info.Length), _ =>
                file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
                    ? Formats.SafeTensorsFile.Open(file).Names.ToList()
                    : Formats.TensorFile.ReadAll(file).Select(t => t.Name).ToList());
        }
        catch (QuantToolsException e)
        {
            Error(node, $"{what}: cannot read '{Path.GetFileName(file)}': {e.Message}");
            return null;
        }
    }

    /// <summary>An error for each name or pattern (*, ?) that matches no tensor of the file, listing what it holds.</summary>
    public void CheckTensorNames(YamlNode node, string file, IEnumerable<string> patterns, string what)
    {
        var list = patterns.ToList();
        if (list.Count == 0) return;
        var names = TensorNames(node, file, what);
        if (names is null) return;
        foreach (var p in list)
        {
            var re = JobContext.TensorName(p);
            if (names.Any(n => re.IsMatch(n))) continue;
            Error(node, $"{what}: no tensor in '{Path.GetFileName(file)}' matches '{p}'; it holds " +
                        (names.Count == 0 ? "no tensors" : string.Join(", ", names.Take(20)) + (names.Count > 20 ? ", ..." : "")));
        }
    }

    /// <summary>The files a path or glob (*, ?, ** for any folders) names, sorted; an error when none match.</summary>
    public List<string> Files(YamlNode node, string text, string what)
    {
        var found = PathGlob.Expand(BaseDir, text);
        if (found.Count == 0)
            Error(node, PathGlob.HasWildcards(text)
                ? $"{what}: no file matches '{text}' (in {BaseDir})"
                : $"{what}: file '{text}' does not exist (looked for {Path.GetFullPath(Path.Combine(BaseDir, text))})");
        return found;
    }

    /// <summary>The node in a canonical text form with variables substituted (the job's identity for -Resume).</summary>
    public string Canonical(YamlNode node)
    {
        var sb = new StringBuilder();
        var errors = Errors.Count;
        Canon(node, sb);
        if (Errors.Count > errors) Errors.RemoveRange(errors, Errors.Count - errors); // reported where the value is read
        return sb.ToString();
    }

    private void Canon(YamlNode node, StringBuilder sb)
    {
        switch (node)
        {
            case YamlScalarNode s:
                sb.Append('"').Append(Substitute(s).Replace("\\", "\\\\").Replace("\"", "\\\"")).Append('"');
                break;
            case YamlSequenceNode q:
                sb.Append('[');
                for (int i = 0; i < q.Children.Count; i++) { if (i > 0) sb.Append(','); Canon(q.Children[i], sb); }
                sb.Append(']');
                break;
            case YamlMappingNode m:
                sb.Append('{');
                bool first = true;
                foreach (var (k, v) in m.Children)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Canon(k, sb);
                    sb.Append(':');
                    Canon(v, sb);
                }
                sb.Append('}');
                break;
        }
    }
}

/// <summary>
/// The options of one step (a YAML mapping), read through <see cref="YamlContext"/>. Keys a step does not declare
/// are errors that list the keys it does know.
/// </summary>
public sealed class StepArgs
{
    private readonly Dictionary<string, (YamlScalarNode Key, YamlNode Value)> _map = new(StringComparer.Ordinal);

    internal StepArgs(YamlContext yaml, JobPlan job, YamlNode node, YamlNode? value, string what)
    {
        Yaml = yaml;
        Job = job;
        Node = node;
        Value = value;
        What = what;
        if (value is YamlMappingNode m)
            foreach (var (k, v) in m.Children)
            {
                var key = (k as YamlScalarNode)?.Value ?? "";
                if (!_map.TryAdd(key, ((YamlScalarNode)k, v))) yaml.Error(k, $"{what}: the key '{key}' is given twice");
            }
    }

    public YamlContext Yaml { get; }
    /// <summary>What the job around the step has (model, engines, inputs, earlier steps).</summary>
    public JobPlan Job { get; }
    /// <summary>The step's node (the list item), for errors about the step as a whole.</summary>
    public YamlNode Node { get; }
    /// <summary>The step's value: a mapping of options, a list (assert), or null when the step is written alone.</summary>
    public YamlNode? Value { get; }
    public string What { get; }
    public bool IsMapping => Value is YamlMappingNode;

    /// <summary>Checks the option keys against <paramref name="allowed"/>; a step written alone or as a mapping is accepted.</summary>
    public void Allow(IReadOnlyCollection<string> allowed)
    {
        if (Value is null || Value is YamlScalarNode { Value: null or "" }) return;
        if (Value is not YamlMappingNode)
        {
            Yaml.Error(Value, $"{What}: expected a mapping of options ({string.Join(", ", allowed)})");
            return;
        }
        foreach (var (key, (k, _)) in _map)
            if (!allowed.Contains(key))
                Yaml.Error(k, $"{What}: unknown key '{key}'; expected one of {string.Join(", ", allowed)}");
    }

    public bool Has(string key) => _map.ContainsKey(key);
    public YamlNode? Get(string key) => _map.TryGetValue(key, out var e) ? e.Value : null;
    public YamlNode KeyNode(string key) => _map.TryGetValue(key, out var e) ? e.Key : Node;

    public string? String(string key) => Get(key) is { } n ? Yaml.Text(n, $"{What}.{key}") : null;
    public bool? Bool(string key) => Get(key) is { } n ? Yaml.Bool(n, $"{What}.{key}") : null;
    public long? Long(string key) => Get(key) is { } n ? Yaml.Long(n, $"{What}.{key}") : null;
    public double? Double(string key) => Get(key) is { } n ? Yaml.Double(n, $"{What}.{key}") : null;
    public List<(string Text, YamlNode Node)>? List(string key) => Get(key) is { } n ? Yaml.List(n, $"{What}.{key}") : null;
    public string? File(string key) => Get(key) is { } n ? Yaml.File(n, $"{What}.{key}") : null;

    /// <summary>One of <paramref name="choices"/> (case-insensitive, returned as written in the list).</summary>
    public string? Choice(string key, IReadOnlyList<string> choices)
    {
        var t = String(key);
        if (t is null) return null;
        var c = choices.FirstOrDefault(x => string.Equals(x, t, StringComparison.OrdinalIgnoreCase));
        if (c is null) Error(key, $"{What}.{key}: '{t}' is not one of {string.Join(", ", choices)}");
        return c;
    }

    public void Error(string key, string message) => Yaml.Error(Get(key) ?? Node, message);
    public void Error(string message) => Yaml.Error(Node, message);

    /// <summary>Arguments for a nested mapping (e.g. one assertion of an assert step).</summary>
    public StepArgs Nested(YamlNode node, string what) => new(Yaml, Job, node, node, what);
}

/// <summary>What a step can know about its job while the file is read.</summary>
public sealed class JobPlan
{
    public required string Name { get; init; }
    public bool HasModel { get; init; }
    public bool HasArchitecture { get; init; }
    public bool HasInputs { get; init; }
    public required IReadOnlyList<string> Engines { get; init; }
    /// <summary>Kinds of the steps before the one being read.</summary>
    public List<PipelineStep> Earlier { get; } = new();
    /// <summary>Golden and other files that steps read (hashed for -Resume).</summary>
    public List<string> Files { get; } = new();
}

/// <summary>Path globs: * and ? within a name, ** for any number of folders. Results are sorted ordinally.</summary>
public static class PathGlob
{
    public static bool HasWildcards(string s) => s.IndexOfAny(['*', '?']) >= 0;

    public static List<string> Expand(string baseDir, string pattern)
    {
        var full = Path.GetFullPath(Path.Combine(baseDir, pattern.Replace('\\', '/')));
        if (!HasWildcards(full)) return System.IO.File.Exists(full) ? [full] : [];
        var segs = full.Split(['/', '\\']);
        int first = Array.FindIndex(segs, HasWildcards);
        var root = string.Join(Path.DirectorySeparatorChar, segs[..first]);
        if (root.Length == 0 || root.EndsWith(':')) root += Path.DirectorySeparatorChar;
        var found = new SortedSet<string>(StringComparer.Ordinal);
        if (Directory.Exists(root)) Walk(root, segs, first, found);
        return found.ToList();
    }

    private static void Walk(string dir, string[] segs, int i, SortedSet<string> found)
    {
        var seg = segs[i];
        bool last = i == segs.Length - 1;
        if (seg == "**")
        {
            if (last) return;
            Walk(dir, segs, i + 1, found);
            foreach (var d in SafeDirs(dir)) Walk(d, segs, i, found);
            return;
        }
        if (last)
        {
            var re = Regex(seg);
            foreach (var f in SafeFiles(dir))
                if (re.IsMatch(Path.GetFileName(f))) found.Add(f);
            return;
        }
        if (!HasWildcards(seg))
        {
            var d = Path.Combine(dir, seg);
            if (Directory.Exists(d)) Walk(d, segs, i + 1, found);
            return;
        }
        var dre = Regex(seg);
        foreach (var d in SafeDirs(dir))
            if (dre.IsMatch(Path.GetFileName(d))) Walk(d, segs, i + 1, found);
    }

    private static IEnumerable<string> SafeDirs(string dir)
    {
        try { return Directory.GetDirectories(dir); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }

    private static IEnumerable<string> SafeFiles(string dir)
    {
        try { return Directory.GetFiles(dir); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }

    /// <summary>A wildcard pattern (* and ?) as an anchored regex.</summary>
    public static Regex Regex(string wildcard) => new(
        "^" + System.Text.RegularExpressions.Regex.Escape(wildcard).Replace(@"\*", ".*").Replace(@"\?", ".") + "$",
        OperatingSystem.IsWindows() ? RegexOptions.IgnoreCase | RegexOptions.CultureInvariant : RegexOptions.CultureInvariant);
}
