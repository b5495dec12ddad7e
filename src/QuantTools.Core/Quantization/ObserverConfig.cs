using System.Globalization;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace QuantTools.Core.Quantization;

/// <summary>
/// An observer described in YAML with PyTorch's constructor argument names, e.g.
/// <code>
/// observer: HistogramObserver
/// dtype: quint8
/// qscheme: per_tensor_affine
/// reduce_range: true
/// bins: 2048
/// </code>
/// Unknown keys and wrong types are errors that give the line and column.
/// </summary>
public sealed record ObserverConfig(string Observer, ObserverOptions Options)
{
    public static readonly IReadOnlyList<string> Keys =
        ["observer", "dtype", "qscheme", "reduce_range", "quant_min", "quant_max", "eps", "ch_axis", "averaging_constant", "bins", "scale", "zero_point"];

    public Observer Create() => ObserverFactory.Create(Observer, Options);

    public static ObserverConfig Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
        return Parse(text, path);
    }

    public static ObserverConfig Parse(string yaml, string source = "<yaml>")
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlException e)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"{Where(source, e.Start)}: {e.Message}", source, e);
        }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode map)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "expected one YAML mapping of observer arguments", source);
        string? observer = null;
        var o = new ObserverOptions();
        foreach (var (k, v) in map.Children)
        {
            var key = ((YamlScalarNode)k).Value ?? "";
            if (v is not YamlScalarNode s)
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"{Where(source, v.Start)}: '{key}' must be a single value", source);
            var text = s.Value ?? "";
            switch (key)
            {
                case "observer": observer = text; break;
                case "dtype": o.Dtype = Wrap(source, s, () => DTypeInfo.Parse(text)); break;
                case "qscheme": o.QScheme = Wrap(source, s, () => QSchemeInfo.Parse(text)); break;
                case "reduce_range": o.ReduceRange = Bool(source, s); break;
                case "quant_min": o.QuantMin = Long(source, s); break;
                case "quant_max": o.QuantMax = Long(source, s); break;
                case "eps": o.Eps = (float)Double(source, s); break;
                case "ch_axis": o.ChAxis = (int)Long(source, s); break;
                case "averaging_constant": o.AveragingConstant = Double(source, s); break;
                case "bins": o.Bins = (int)Long(source, s); break;
                case "scale": o.Scale = Double(source, s); break;
                case "zero_point": o.ZeroPoint = Long(source, s); break;
                default:
                    throw new QuantToolsException(ErrorCode.InvalidArgument,
                        $"{Where(source, k.Start)}: unknown key '{key}'; expected one of {string.Join(", ", Keys)}", source);
            }
        }
        if (string.IsNullOrEmpty(observer))
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"{Where(source, map.Start)}: the key 'observer' is required (e.g. HistogramObserver)", source);
        return new ObserverConfig(observer, o);
    }

    private static string Where(string source, Mark m) => $"{source}:{m.Line}:{m.Column}";

    private static T Wrap<T>(string source, YamlScalarNode s, Func<T> f)
    {
        try { return f(); }
        catch (QuantToolsException e) { throw new QuantToolsException(e.Code, $"{Where(source, s.Start)}: {e.Message}", source, e); }
    }

    private static bool Bool(string source, YamlScalarNode s) => s.Value?.ToLowerInvariant() switch
    {
        "true" or "yes" or "on" => true,
        "false" or "no" or "off" => false,
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"{Where(source, s.Start)}: expected true or false, found '{s.Value}'", source),
    };

    private static long Long(string source, YamlScalarNode s) =>
        long.TryParse(s.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
            : throw new QuantToolsException(ErrorCode.InvalidArgument, $"{Where(source, s.Start)}: expected an integer, found '{s.Value}'", source);

    private static double Double(string source, YamlScalarNode s) =>
        double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
            : throw new QuantToolsException(ErrorCode.InvalidArgument, $"{Where(source, s.Start)}: expected a number, found '{s.Value}'", source);
}
