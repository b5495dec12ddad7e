using System.Text.Json;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Conformance;

/// <summary>One golden JSON file with its safetensors companion (see the golden data README for the layout).</summary>
public sealed class GoldenFile : IDisposable
{
    private SafeTensorsFile? _tensors;
    public string JsonPath { get; }
    public JsonDocument Document { get; }
    public JsonElement Root => Document.RootElement;

    public GoldenFile(string jsonPath)
    {
        JsonPath = jsonPath;
        try
        {
            Document = JsonDocument.Parse(File.ReadAllBytes(jsonPath));
        }
        catch (JsonException e)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"not valid JSON: {e.Message}", jsonPath, e);
        }
        catch (IOException e)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, jsonPath, e);
        }
    }

    /// <summary>The companion safetensors file named by the JSON's <c>file</c> key, opened on first use.</summary>
    public SafeTensorsFile Tensors
    {
        get
        {
            if (_tensors is null)
            {
                var name = Root.TryGetProperty("file", out var f) ? f.GetString() : null;
                if (string.IsNullOrEmpty(name))
                    throw new QuantToolsException(ErrorCode.CorruptFile, "no 'file' key naming the safetensors file", JsonPath);
                _tensors = SafeTensorsFile.Open(Path.Combine(Path.GetDirectoryName(JsonPath)!, name));
            }
            return _tensors;
        }
    }

    public IEnumerable<JsonElement> Cases =>
        Root.TryGetProperty("cases", out var c) ? c.EnumerateArray() : Enumerable.Empty<JsonElement>();

    public IEnumerable<JsonElement> Errors =>
        Root.TryGetProperty("errors", out var c) ? c.EnumerateArray() : Enumerable.Empty<JsonElement>();

    /// <summary>Reads a quantized-tensor record {int, dtype, qscheme, shape, scale|scales, zero_point|zero_points, axis}.</summary>
    public QTensor GetQTensor(JsonElement rec)
    {
        var dtype = DTypeInfo.Parse(rec.GetProperty("dtype").GetString()!);
        var scheme = QSchemeInfo.Parse(rec.GetProperty("qscheme").GetString()!);
        var ints = Tensors.Get(rec.GetProperty("int").GetString()!);
        var shape = rec.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        if (dtype is DType.QUInt4x2 or DType.QUInt2x4)
        {
            int n = (int)Tensor.CheckedNumel(shape);
            ints = new Tensor(DType.UInt8, shape, QTensor.UnpackSubByte(ints.AsSpan<byte>(), dtype, n));
        }
        else ints = ints.Reshape(shape);
        QParams qp;
        if (scheme.IsPerChannel())
        {
            var scales = Tensors.Get(rec.GetProperty("scales").GetString()!);
            var zps = Tensors.Get(rec.GetProperty("zero_points").GetString()!);
            int axis = rec.GetProperty("axis").GetInt32();
            var sc = Enumerable.Range(0, scales.Length).Select(scales.GetDouble).ToArray();
            if (zps.DType.IsFloatingPoint())
                qp = new QParams(scheme, dtype, sc, [], axis,
                    Enumerable.Range(0, zps.Length).Select(i => (float)zps.GetDouble(i)).ToArray());
            else
                qp = new QParams(scheme, dtype, sc, Enumerable.Range(0, zps.Length).Select(i => (long)zps.GetDouble(i)).ToArray(), axis);
        }
        else
            qp = new QParams(scheme, dtype, [rec.GetProperty("scale").GetDouble()], [rec.GetProperty("zero_point").GetInt64()]);
        return new QTensor(ints, qp);
    }

    public void Dispose() => Document.Dispose();
}
