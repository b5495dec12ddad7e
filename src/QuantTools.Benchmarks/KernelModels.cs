using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using QuantTools.Core.Formats;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;
using QuantTools.Torch;
using TorchSharp;
using CoreTensor = QuantTools.Core.Tensors.Tensor;

namespace QuantTools.Benchmarks;

/// <summary>
/// One benchmark model of tests/fixtures/bench (quantize -> int8 Linear or Conv(+ReLU) -> dequantize) run three ways on
/// the same float input: ours (Quantizer + PackedLinearWeight / PackedConvWeight + Quantizer, with the weights, bias and
/// qparams read from the TorchScript file), libtorch (torch.jit.load of that file through TorchSharp) and ONNX Runtime
/// (the .qop.onnx QOperator model, IntraOpNumThreads = threads, sequential, all graph optimizations, IO-bound OrtValues).
/// Creating it checks that our output equals libtorch's bit for bit (float bits of the dequantized output), so the
/// rows time the same work.
/// </summary>
internal sealed class KernelModel : IDisposable
{
    public string Name { get; }
    public int Threads { get; }
    /// <summary>Multiply-accumulates of the op (M*N*K for linear, N*OH*OW*C_out*K for conv); GOPS counts 2 per MAC.</summary>
    public long Macs { get; }
    public string Engine { get; private set; } = "";
    public int OrtMismatches { get; private set; }
    /// <summary>Largest |onnxruntime - libtorch| over the outputs, in output quantization steps.</summary>
    public double OrtMaxSteps { get; private set; }

    private readonly float[] _x;
    private readonly int[] _xShape;
    private readonly float[] _yOurs;
    // ours
    private readonly double _inScale;
    private readonly long _inZp;
    private readonly double _outScale;
    private readonly long _outZp;
    private readonly bool _relu;
    private readonly QTensor _qx;
    private PackedLinearWeight? _linear;
    private PackedConvWeight? _conv;
    private readonly QTensor _weight;
    private readonly CoreTensor? _bias;
    private readonly ConvArgs? _convParams;

    private sealed record ConvArgs(int[] Stride, int[] Padding, int[] Dilation, int Groups, bool Transposed, int[] OutputPadding);
    // libtorch
    private torch.jit.ScriptModule<torch.Tensor, torch.Tensor>? _ts;
    private torch.Tensor? _xt;
    // onnxruntime
    private InferenceSession? _ort;
    private OrtIoBinding? _binding;
    private RunOptions? _runOptions;
    private OrtValue? _ortIn;
    private OrtValue? _ortOut;
    private readonly float[] _yOrt;

    public static string FixtureDir => Path.Combine(Rows.FindRepoRoot(), "tests", "fixtures", "bench");

    public KernelModel(string name, int threads, bool withTorch = true, bool withOrt = true)
    {
        Name = name;
        Threads = threads;
        var dir = FixtureDir;
        var st = SafeTensorsFile.Open(Path.Combine(dir, "bench.safetensors"));
        var input = st.Get($"{name}/input");
        _xShape = input.Shape;
        _x = input.ToFloat32().AsSpan<float>().ToArray();

        // ---- weights, bias and qparams from the TorchScript module tree
        var ck = TorchCheckpoint.Load(Path.Combine(dir, name + ".torchscript.pt"));
        var modules = ck.Modules!.DescendantsAndSelf().ToList();
        var quant = modules.Single(m => m.Kind == "Quantize");
        _inScale = quant.Attributes.GetScalar("scale");
        _inZp = (long)quant.Attributes.GetScalar("zero_point");
        var op = modules.Single(m => m.Kind is "Linear" or "LinearReLU" or "Conv2d" or "ConvReLU2d");
        _outScale = op.Attributes.GetScalar("scale");
        _outZp = (long)op.Attributes.GetScalar("zero_point");
        _relu = op.Kind.EndsWith("ReLU2d", StringComparison.Ordinal) || op.Kind == "LinearReLU";
        var packed = op.Attributes.Values.Concat(op.Children.SelectMany(c => c.Attributes.Values))
            .FirstOrDefault(v => v is ConvPackedParams or LinearPackedParams);
        switch (packed)
        {
            case ConvPackedParams cp:
                _weight = cp.Weight; _bias = cp.Bias;
                _convParams = new ConvArgs(Ints(cp.Stride), Ints(cp.Padding), Ints(cp.Dilation), (int)cp.Groups, cp.Transpose, Ints(cp.OutputPadding));
                break;
            case LinearPackedParams lp:
                _weight = (QTensor)lp.Weight; _bias = lp.Bias;
                break;
            default:
                // scripted nnq.Conv2d keeps weight / bias as plain attributes
                _weight = op.Attributes.Get<QTensor>("weight");
                _bias = op.Attributes.TryGet<CoreTensor>("bias", out var b) ? b : null;
                if (op.Kind.StartsWith("Conv", StringComparison.Ordinal))
                {
                    var a = op.Attributes;
                    _convParams = new ConvArgs(Ints(a["stride"]), Ints(a["padding"]), Ints(a["dilation"]), (int)a.GetScalar("groups"),
                        a.TryGet<bool>("transposed", out var tr) && tr, a.TryGetValue("output_padding", out var opad) ? Ints(opad) : []);
                    if (a.TryGetValue("padding_mode", out var pm) && pm is string mode && mode != "zeros")
                        throw new InvalidOperationException($"{name}: padding_mode '{mode}' is not what the bench models use");
                }
                break;
        }

        _qx = new QTensor(CoreTensor.Zeros(DType.UInt8, _xShape), QParams.PerTensor(_inScale, _inZp, DType.QUInt8));
        int outFeatures = _weight.Shape[0];
        int[] yShape;
        if (_convParams is { } p)
        {
            var (oh, ow) = (OutSize(_xShape[2], _weight.Shape[2], p.Stride[0], p.Padding[0], p.Dilation[0]),
                OutSize(_xShape[3], _weight.Shape[3], p.Stride[^1], p.Padding[^1], p.Dilation[^1]));
            yShape = [_xShape[0], outFeatures, oh, ow];
            long k = (long)_weight.Shape[1] * _weight.Shape[2] * _weight.Shape[3];
            Macs = (long)_xShape[0] * oh * ow * outFeatures * k;
        }
        else
        {
            yShape = [_xShape[0], outFeatures];
            Macs = (long)_xShape[0] * outFeatures * _weight.Shape[1];
        }
        _yOurs = new float[yShape.Aggregate(1, (a, b) => a * b)];
        _yOrt = new float[_yOurs.Length];

        // ---- libtorch
        float[]? yTorch = null;
        if (withTorch)
        {
            LibTorchReference.EnsureLoaded();
            torch.set_num_threads(threads);
            torch.set_grad_enabled(false);
            _ts = torch.jit.load<torch.Tensor, torch.Tensor>(Path.Combine(dir, name + ".torchscript.pt"));
            _ts.eval();
            _xt = torch.tensor(_x, _xShape.Select(d => (long)d).ToArray());
            using var yt = _ts.call(_xt);
            yTorch = yt.contiguous().data<float>().ToArray();
        }

        // ---- ours: pick the engine whose output equals libtorch's (x86 first: libtorch's default engine)
        Parallelism.MaxThreads = threads;
        var engines = new[] { QEngine.X86, QEngine.Onednn, QEngine.Fbgemm, QEngine.Qnnpack };
        string tried = "";
        foreach (var e in engines)
        {
            try { Prepare(e); }
            catch (Exception ex) { tried += $" {e.TorchName()}: {ex.Message};"; continue; }
            RunOurs();
            if (yTorch is null) { Engine = e.TorchName(); break; }
            int diff = CountBitDiffs(_yOurs, yTorch);
            if (diff == 0) { Engine = e.TorchName(); break; }
            tried += $" {e.TorchName()}: {diff} of {yTorch.Length} outputs differ;";
        }
        if (Engine.Length == 0)
            throw new InvalidOperationException($"{name}: our output does not equal libtorch's under any engine ({tried.Trim()}); " +
                "the rows would not compare the same work");

        // ---- onnxruntime
        if (withOrt)
        {
            var so = new SessionOptions
            {
                IntraOpNumThreads = threads,
                InterOpNumThreads = 1,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            };
            _ort = new InferenceSession(Path.Combine(dir, name + ".qop.onnx"), so);
            string inName = _ort.InputMetadata.Keys.Single(), outName = _ort.OutputMetadata.Keys.Single();
            _ortIn = OrtValue.CreateTensorValueFromMemory(_x, _xShape.Select(d => (long)d).ToArray());
            _ortOut = OrtValue.CreateTensorValueFromMemory(_yOrt, yShape.Select(d => (long)d).ToArray());
            _runOptions = new RunOptions();
            _binding = _ort.CreateIoBinding();
            _binding.BindInput(inName, _ortIn);
            _binding.BindOutput(outName, _ortOut);
            RunOrt();
            // Information only: ORT's QLinearConv / QLinearMatMul round differently from PyTorch's engines.
            var reference = yTorch ?? _yOurs;
            OrtMismatches = CountBitDiffs(_yOrt, reference);
            for (int i = 0; i < reference.Length; i++)
                OrtMaxSteps = Math.Max(OrtMaxSteps, Math.Abs(_yOrt[i] - reference[i]) / _outScale);
        }
    }

    private static int[] Ints(object? v) => v switch
    {
        long[] l => l.Select(x => (int)x).ToArray(),
        object?[] o => o.Select(x => Convert.ToInt32(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        long l => [(int)l],
        _ => throw new InvalidOperationException($"not a list of ints: {v}"),
    };

    private static int OutSize(int n, int k, int s, int p, int d) => (n + 2 * p - d * (k - 1) - 1) / s + 1;

    private void Prepare(QEngine engine)
    {
        if (_convParams is { } p)
            _conv = PackedConvWeight.Create(_weight, _bias, p.Stride, p.Padding, p.Dilation, p.Groups, p.Transposed, p.OutputPadding, engine);
        else
            _linear = PackedLinearWeight.Create(_weight, _bias, engine);
    }

    private static int CountBitDiffs(float[] a, float[] b)
    {
        if (a.Length != b.Length) return Math.Max(a.Length, b.Length);
        var ia = MemoryMarshal.Cast<float, int>(a);
        var ib = MemoryMarshal.Cast<float, int>(b);
        int n = 0;
        for (int i = 0; i < ia.Length; i++) if (ia[i] != ib[i]) n++;
        return n;
    }

    /// <summary>quantize_per_tensor -> op -> dequantize, the same three steps the TorchScript forward runs.</summary>
    public void RunOurs()
    {
        Quantizer.QuantizePerTensor(_x, _qx.IntRepr.AsSpan<byte>(), _inScale, _inZp);
        var y = _conv is not null ? _conv.Run(_qx, _outScale, _outZp, _relu) : _linear!.Run(_qx, _outScale, _outZp, _relu);
        Quantizer.DequantizePerTensor(y.IntRepr.AsSpan<byte>(), _yOurs, _outScale, _outZp);
    }

    public void RunTorch()
    {
        using var y = _ts!.call(_xt!);
    }

    public void RunOrt() => _ort!.RunWithBinding(_runOptions!, _binding!);

    public string Describe() =>
        $"{Name} ({Threads} thread{(Threads > 1 ? "s" : "")}): ours engine {Engine} == libtorch bit for bit; " +
        $"in ({_inScale:G6}, {_inZp}) out ({_outScale:G6}, {_outZp}){(_relu ? " relu" : "")}; " +
        (_ort is null ? "" : $"onnxruntime differs from libtorch on {OrtMismatches} of {_yOrt.Length} outputs, by at most {OrtMaxSteps:0.##} output steps");

    public void Dispose()
    {
        _binding?.Dispose();
        _ortIn?.Dispose();
        _ortOut?.Dispose();
        _runOptions?.Dispose();
        _ort?.Dispose();
        _xt?.Dispose();
        _ts?.Dispose();
    }
}
