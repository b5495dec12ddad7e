using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using QuantTools.Core;
using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Onnx;
using QuantTools.Core.Tensors;
using Tensor = QuantTools.Core.Tensors.Tensor;

namespace QuantTools.OnnxRuntime;

/// <summary>
/// A .onnx file in real ONNX Runtime (Microsoft.ML.OnnxRuntime, CPU provider), in-process: the second opinion on
/// <see cref="OnnxExecutor"/>. The output comes from a session on the file as it is. Per-node capture runs a second
/// session on a copy of the file whose graph also outputs every quantized value (the outputs of QuantizeLinear and
/// QLinear nodes), since ONNX Runtime returns graph outputs only. Making an int8 QuantizeLinear a graph output stops
/// ORT's QDQS8ToU8 rewrite (it needs the Q to have a single consumer), so captures of int8 QDQ models can come from a
/// graph that runs differently; the output never does.
/// </summary>
public sealed class OrtSessionModel : IDisposable
{
    private readonly InferenceSession _session;
    private readonly byte[] _bytes;
    private readonly SessionOptions _options;
    private readonly OnnxModel _model;
    private readonly List<(string Name, string Kind, float Scale, int Zp)> _captures = [];
    private InferenceSession? _captureSession;

    public string EngineName { get; }
    public string InputName { get; }

    private OrtSessionModel(string path, int threads, bool optimize)
    {
        _model = OnnxReader.Load(path);
        _bytes = File.ReadAllBytes(path);
        _options = new SessionOptions
        {
            GraphOptimizationLevel = optimize ? GraphOptimizationLevel.ORT_ENABLE_ALL : GraphOptimizationLevel.ORT_DISABLE_ALL,
            IntraOpNumThreads = threads,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        _session = new InferenceSession(_bytes, _options);
        InputName = _session.InputMetadata.Keys.First();
        EngineName = $"onnxruntime {OrtEnv.Instance().GetVersionString()} CPU ({(optimize ? "ORT_ENABLE_ALL" : "ORT_DISABLE_ALL")}, {threads} threads)";
        var consts = _model.Graph.Initializers;
        foreach (var n in _model.Graph.Nodes)
        {
            int? sAt = n.OpType switch
            {
                "QuantizeLinear" => 1,
                "QLinearConv" or "QLinearMatMul" => 6,
                "QGemm" => n.Inputs.Count > 8 ? 7 : null,
                "QLinearGlobalAveragePool" or "QLinearLeakyRelu" or "QLinearSigmoid" or "QLinearAveragePool" => 3,
                "QLinearAdd" or "QLinearMul" => 6,
                "QLinearConcat" => 0,
                _ => null,
            };
            if (sAt is not { } at || n.Outputs.Count == 0 || _model.Graph.Outputs.Any(o => o.Name == n.Outputs[0])) continue;
            if (!consts.TryGetValue(n.Input(at), out var st) || st.Count != 1) continue;
            float scale = (float)st.ToTensor().GetDouble(0);
            int zp = consts.TryGetValue(n.Input(at + 1), out var zt) && zt.Count == 1 ? (int)zt.ToTensor().GetDouble(0) : 0;
            _captures.Add((n.Outputs[0], n.OpType, scale, zp));
        }
    }

    public static OrtSessionModel Load(string path, int threads, bool optimize)
    {
        try
        {
            return new OrtSessionModel(path, threads, optimize);
        }
        catch (OnnxRuntimeException e)
        {
            throw new QuantToolsException(ErrorCode.NotSupported, $"ONNX Runtime could not load the model: {e.Message}", path, e);
        }
    }

    private static NamedOnnxValue Input(string name, Tensor t)
    {
        var dims = t.Shape;
        return t.DType switch
        {
            DType.Float32 => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>((float[])t.Data, dims)),
            DType.UInt8 => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<byte>((byte[])t.Data, dims)),
            DType.Int8 => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<sbyte>((sbyte[])t.Data, dims)),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"input of {t.DType.TorchName()} is not supported by -Engine onnxruntime"),
        };
    }

    private static Tensor ToTensor(DisposableNamedOnnxValue v)
    {
        switch (v.Value)
        {
            case DenseTensor<float> f: return new Tensor(DType.Float32, f.Dimensions.ToArray(), f.ToArray());
            case DenseTensor<byte> b: return new Tensor(DType.UInt8, b.Dimensions.ToArray(), b.ToArray());
            case DenseTensor<sbyte> s: return new Tensor(DType.Int8, s.Dimensions.ToArray(), s.ToArray());
            case DenseTensor<int> i: return new Tensor(DType.Int32, i.Dimensions.ToArray(), i.ToArray());
            default: throw new QuantToolsException(ErrorCode.UnsupportedDType, $"output '{v.Name}' is {v.Value?.GetType().Name}", "onnxruntime");
        }
    }

    public ModelResult Run(Tensor input, bool captureLayers, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        var inputs = new[] { Input(InputName, input) };
        List<object> outputs;
        try
        {
            using var res = _session.Run(inputs);
            outputs = res.Select(r => (object)ToTensor(r)).ToList();
        }
        catch (OnnxRuntimeException e)
        {
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"ONNX Runtime failed: {e.Message}", _model.Source, e);
        }
        var layers = new List<CapturedLayer>();
        if (captureLayers && _captures.Count > 0)
        {
            _captureSession ??= new InferenceSession(OnnxWriter.WithExtraOutputs(_bytes,
                _captures.Select(c => new OnnxWriter.Value(c.Name, ZeroPointType(c.Name), null)), _model.Source), _options);
            using var res = _captureSession.Run(inputs);
            var byName = res.ToDictionary(r => r.Name, r => r);
            foreach (var c in _captures)
            {
                if (!byName.TryGetValue(c.Name, out var v)) continue;
                var t = ToTensor(v);
                if (t.DType is not (DType.UInt8 or DType.Int8)) continue;
                layers.Add(new CapturedLayer(c.Name, c.Kind, new QTensor(t, QParams.PerTensor(c.Scale, c.Zp, t.DType == DType.UInt8 ? DType.QUInt8 : DType.QInt8))));
            }
        }
        return new ModelResult { Outputs = outputs, Layers = layers };
    }

    private OnnxDataType ZeroPointType(string value)
    {
        var n = _model.Graph.Nodes.First(n => n.Outputs.Contains(value));
        int at = n.OpType switch { "QuantizeLinear" => 2, "QLinearConv" or "QLinearMatMul" or "QLinearAdd" or "QLinearMul" => 7, "QGemm" => 8, "QLinearConcat" => 1, _ => 4 };
        return _model.Graph.Initializers.TryGetValue(n.Input(at), out var z) ? z.DataType : OnnxDataType.UInt8;
    }

    public void Dispose()
    {
        _captureSession?.Dispose();
        _session.Dispose();
        _options.Dispose();
    }
}
