using System.Diagnostics;
using QuantTools.Core;
using QuantTools.Core.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using CoreTensor = QuantTools.Core.Tensors.Tensor;

namespace QuantTools.Torch;

/// <summary>
/// libtorch (through TorchSharp, in-process) as a reference implementation of quantize/dequantize. Signatures
/// use only BCL and QuantTools.Core types, so callers need not reference TorchSharp.
/// Integers come back widened to <c>int</c> for every quantized dtype.
/// </summary>
public static class LibTorchReference
{
    private static readonly Lazy<TimeSpan> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Loads libtorch once (about half a second the first time) and returns how long that took.</summary>
    public static TimeSpan EnsureLoaded() => Loaded.Value;

    private static TimeSpan Load()
    {
        var sw = Stopwatch.StartNew();
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception e)
        {
            throw new QuantToolsException(ErrorCode.NotSupported,
                "libtorch could not be loaded in-process (TorchSharp 0.107.0 + libtorch-cpu-linux-x64 2.10.0); " +
                "on a libstdc++ older than GCC 13's, the build must have marked GLIBCXX_3.4.32 weak in libLibTorchSharp.so: " +
                e.Message);
        }
        return sw.Elapsed;
    }

    /// <summary>libtorch's intra-op thread count (<c>torch.set_num_threads</c>).</summary>
    public static int NumThreads
    {
        get { EnsureLoaded(); return torch.get_num_threads(); }
        set { EnsureLoaded(); torch.set_num_threads(value); }
    }

    // ---- torch.backends.quantized.engine: TorchSharp does not bind it, so libtorch_cpu.so's C++ entry points are called
    // directly (at::globalContext(), at::Context::qEngine() const, supportedQEngines(), setQEngine(c10::QEngine)).
    // c10::QEngine is a uint8_t enum: NoQEngine 0, FBGEMM 1, QNNPACK 2, ONEDNN 3, X86 4.
    private static readonly string[] QEngineNames = ["none", "fbgemm", "qnnpack", "onednn", "x86"];

    private sealed unsafe class ContextApi
    {
        public readonly delegate* unmanaged<IntPtr> GlobalContext;
        public readonly delegate* unmanaged<IntPtr, byte> QEngine;
        public readonly delegate* unmanaged<IntPtr, IntPtr> SupportedQEngines;
        public readonly delegate* unmanaged<IntPtr, byte, void> SetQEngine;

        public ContextApi()
        {
            var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? "";
            var path = Path.Combine(dir, "libtorch_cpu.so");
            var lib = File.Exists(path) ? System.Runtime.InteropServices.NativeLibrary.Load(path)
                : System.Runtime.InteropServices.NativeLibrary.Load("libtorch_cpu.so");
            IntPtr F(string name) => System.Runtime.InteropServices.NativeLibrary.GetExport(lib, name);
            GlobalContext = (delegate* unmanaged<IntPtr>)F("_ZN2at13globalContextEv");
            QEngine = (delegate* unmanaged<IntPtr, byte>)F("_ZNK2at7Context7qEngineEv");
            SupportedQEngines = (delegate* unmanaged<IntPtr, IntPtr>)F("_ZN2at7Context17supportedQEnginesEv");
            SetQEngine = (delegate* unmanaged<IntPtr, byte, void>)F("_ZN2at7Context10setQEngineEN3c107QEngineE");
        }
    }

    private static readonly Lazy<ContextApi> Context = new(() => { EnsureLoaded(); return new ContextApi(); });

    /// <summary>The engines this libtorch build supports (<c>torch.backends.quantized.supported_engines</c>).</summary>
    public static unsafe IReadOnlyList<string> SupportedQEngines
    {
        get
        {
            var c = Context.Value;
            // const std::vector<QEngine>&: begin and end pointers are the vector's first two words.
            var v = (byte**)c.SupportedQEngines(c.GlobalContext());
            var list = new List<string>();
            for (byte* p = v[0]; p < v[1]; p++) list.Add(*p < QEngineNames.Length ? QEngineNames[*p] : $"engine{*p}");
            return list;
        }
    }

    /// <summary>
    /// libtorch's current quantized engine (<c>torch.backends.quantized.engine</c>): x86, fbgemm, onednn or qnnpack.
    /// Set it before <c>torch.jit.load</c>: loading prepacks quantized weights for the current engine.
    /// </summary>
    public static unsafe string QEngine
    {
        get
        {
            var c = Context.Value;
            byte e = c.QEngine(c.GlobalContext());
            return e < QEngineNames.Length ? QEngineNames[e] : $"engine{e}";
        }
        set
        {
            var name = value.Trim().ToLowerInvariant() switch { "mkldnn" => "onednn", var n => n };
            int e = Array.IndexOf(QEngineNames, name);
            // setQEngine throws a C++ exception for an unsupported engine, which must not cross into .NET: check first.
            if (e <= 0 || !SupportedQEngines.Contains(name))
                throw new QuantToolsException(ErrorCode.NotSupported,
                    $"libtorch engine '{value}' is not supported here; supported: {string.Join(", ", SupportedQEngines)}");
            var c = Context.Value;
            c.SetQEngine(c.GlobalContext(), (byte)e);
        }
    }

    /// <summary>libtorch's version string as TorchSharp reports it.</summary>
    public static string Version { get { EnsureLoaded(); return torch.__version__; } }

    private static ScalarType QType(DType dtype) => dtype is DType.QUInt8 or DType.QInt8 or DType.QInt32
        ? TorchBridge.ToScalarType(dtype)
        : throw new QuantToolsException(ErrorCode.UnsupportedDType, $"libtorch reference supports quint8, qint8 and qint32, not {dtype.TorchName()}");

    /// <summary><c>torch.quantize_per_tensor(x, scale, zero_point, dtype).int_repr()</c>, widened to int.</summary>
    public static int[] QuantizePerTensor(float[] x, double scale, long zeroPoint, DType dtype)
    {
        var st = QType(dtype);
        EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        var t = torch.tensor(x, ScalarType.Float32);
        var q = torch.quantize_per_tensor(t, scale, zeroPoint, st);
        return IntRepr(q.int_repr());
    }

    /// <summary><c>torch.quantize_per_channel(x.reshape(shape), scales (float64), zero_points (int64), axis, dtype).int_repr()</c>, flattened.</summary>
    public static int[] QuantizePerChannel(float[] x, int[] shape, double[] scales, long[] zeroPoints, int axis, DType dtype)
    {
        var st = QType(dtype);
        EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        var t = torch.tensor(x, ScalarType.Float32).reshape(Array.ConvertAll(shape, d => (long)d));
        var q = torch.quantize_per_channel(t, torch.tensor(scales, ScalarType.Float64),
            torch.tensor(zeroPoints, ScalarType.Int64), axis, st);
        return IntRepr(q.int_repr());
    }

    /// <summary><c>dequantize()</c> of a per-tensor quantized tensor holding <paramref name="q"/>.</summary>
    public static float[] Dequantize(int[] q, double scale, long zeroPoint, DType dtype)
    {
        var qt = new QTensor(IntTensor(q, [q.Length], dtype), QParams.PerTensor(scale, zeroPoint, dtype));
        return Dequantize(qt).AsSpan<float>().ToArray();
    }

    /// <summary><c>dequantize()</c> of a per-channel quantized tensor holding <paramref name="q"/> (shape <paramref name="shape"/>).</summary>
    public static float[] DequantizePerChannel(int[] q, int[] shape, double[] scales, long[] zeroPoints, int axis, DType dtype)
    {
        var qt = new QTensor(IntTensor(q, shape, dtype), QParams.PerChannel(scales, zeroPoints, axis, dtype));
        return Dequantize(qt).AsSpan<float>().ToArray();
    }

    /// <summary>Quantizes a Core float tensor with libtorch (per-tensor or per-channel affine qparams).</summary>
    public static QTensor Quantize(CoreTensor x, QParams qp)
    {
        EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        var t = TorchBridge.ToTorch(x.ToFloat32());
        var st = QType(qp.DType);
        var q = qp.IsPerChannel
            ? torch.quantize_per_channel(t, torch.tensor(qp.Scales, ScalarType.Float64), torch.tensor(qp.ZeroPoints, ScalarType.Int64), qp.Axis, st)
            : torch.quantize_per_tensor(t, qp.Scale, qp.ZeroPoint, st);
        return TorchBridge.QFromTorch(q);
    }

    /// <summary>Dequantizes a Core quantized tensor with libtorch.</summary>
    public static CoreTensor Dequantize(QTensor q)
    {
        EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        var t = TorchBridge.ToTorch(q);
        return TorchBridge.FromTorch(t.dequantize());
    }

    private static CoreTensor IntTensor(int[] q, int[] shape, DType dtype)
    {
        switch (dtype)
        {
            case DType.QUInt8:
            {
                var b = new byte[q.Length];
                for (int i = 0; i < q.Length; i++) b[i] = checked((byte)q[i]);
                return new CoreTensor(DType.UInt8, shape, b);
            }
            case DType.QInt8:
            {
                var b = new sbyte[q.Length];
                for (int i = 0; i < q.Length; i++) b[i] = checked((sbyte)q[i]);
                return new CoreTensor(DType.Int8, shape, b);
            }
            case DType.QInt32:
                return new CoreTensor(DType.Int32, shape, (int[])q.Clone());
            default:
                throw new QuantToolsException(ErrorCode.UnsupportedDType, dtype.TorchName());
        }
    }

    private static int[] IntRepr(torch.Tensor r)
    {
        var c = r.contiguous();
        var n = checked((int)c.numel());
        var result = new int[n];
        if (n == 0) return result;
        switch (c.dtype)
        {
            case ScalarType.Byte:
            {
                var s = c.bytes;
                for (int i = 0; i < n; i++) result[i] = s[i];
                break;
            }
            case ScalarType.Int8:
            {
                var s = c.bytes;
                for (int i = 0; i < n; i++) result[i] = (sbyte)s[i];
                break;
            }
            case ScalarType.Int32:
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(c.bytes).CopyTo(result);
                break;
            default:
                throw new QuantToolsException(ErrorCode.UnsupportedDType, $"unexpected int_repr dtype {c.dtype}");
        }
        return result;
    }
}
