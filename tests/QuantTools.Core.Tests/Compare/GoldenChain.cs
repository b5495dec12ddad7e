using QuantTools.Core.Compare;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Models;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Compare;

/// <summary>
/// A golden model's per-layer outputs (PyTorch's run) and the layers after any point re-run with Core's bit-exact
/// kernels, so that a perturbation of one layer propagates to later layers as it would in a real backend.
/// Only the two sequential models of the golden data: relu6_eager and seed_convnet (all convs 3x3, stride 1, pad 1).
/// </summary>
internal sealed class GoldenChain
{
    public string Model { get; }
    public LayerSet Golden { get; }
    private readonly QuantModel _model;
    private readonly Func<int, QTensor, QTensor>[] _steps;

    public GoldenChain(string model)
    {
        Model = model;
        Golden = LayerDumps.ReadGolden(Fixtures.Core("models", model + ".json"));
        _model = ModelLoader.Load(Fixtures.Core("models", model + ".torchscript.pt"));
        _steps = Golden.Layers.Select(l => Step(l.Name)).ToArray();
    }

    public IReadOnlyList<string> Names => Golden.Layers.Select(l => l.Name).ToList();
    public QTensor Output(string layer) => (QTensor)Golden.Layers.First(l => l.Name == layer).Value;
    public int IndexOf(string layer) => Names.ToList().IndexOf(layer);

    /// <summary>Conv of the named layer with the model's weights; <paramref name="engine"/> and a bias override let tests act as a backend.</summary>
    public QTensor Conv(string layer, QTensor x, QEngine engine = QEngine.X86, Tensor? bias = null, QTensor? weight = null)
    {
        var l = _model.Find(layer)!;
        var pw = PackedConvWeight.Create(weight ?? l.Weight!, bias ?? l.Bias, [1], [1], [1], 1, false, [], engine);
        return pw.Run(x, l.OutputScale!.Value, l.OutputZeroPoint!.Value, relu: l.Kind == "ConvReLU2d");
    }

    public ModelLayer Layer(string name) => _model.Find(name)!;

    /// <summary>int32 accumulators Σ (a − a_zp)(w − w_zp) of a 3x3 / stride 1 / pad 1 conv layer, [C_out, H, W] for image 0.</summary>
    public long[] Accumulators(string layer, QTensor x)
    {
        var w = Layer(layer).Weight!;
        int oc = w.Shape[0], ic = w.Shape[1], h = x.Shape[2], wd = x.Shape[3];
        long azp = x.QParams.ZeroPoint;
        var acc = new long[oc * h * wd];
        var xs = x.IntRepr.AsSpan<byte>();
        var ws = w.IntRepr.AsSpan<sbyte>();
        for (int o = 0; o < oc; o++)
        {
            long wzp = w.QParams.ZeroPoints[w.QParams.IsPerChannel ? o : 0];
            for (int i = 0; i < h; i++)
                for (int j = 0; j < wd; j++)
                {
                    long s = 0;
                    for (int c = 0; c < ic; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++)
                            {
                                int yy = i + ky - 1, xx = j + kx - 1;
                                if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
                                s += (xs[(c * h + yy) * wd + xx] - azp) * (ws[((o * ic + c) * 3 + ky) * 3 + kx] - wzp);
                            }
                    acc[(o * h + i) * wd + j] = s;
                }
        }
        return acc;
    }

    /// <summary>Float requantization of accumulators to the layer's output qparams (half-even), as a backend would.</summary>
    public long Requantize(string layer, int channel, long acc, double inScale)
    {
        var l = Layer(layer);
        var ws = l.Weight!.QParams;
        double sw = ws.IsPerChannel ? ws.Scales[channel] : ws.Scale;
        double b = l.Bias is null ? 0 : l.Bias.GetDouble(channel);
        double v = (acc * inScale * sw + b) / l.OutputScale!.Value;
        long q = (long)Math.Round(v, MidpointRounding.ToEven) + l.OutputZeroPoint!.Value;
        return Math.Clamp(q, l.Kind == "ConvReLU2d" ? l.OutputZeroPoint!.Value : 0, 255);
    }

    private Func<int, QTensor, QTensor> Step(string name)
    {
        var kind = _model.Find(name)?.Kind;
        return kind switch
        {
            "Conv2d" or "ConvReLU2d" => (_, x) => Conv(name, x),
            "ReLU6" => (_, x) => QActivation.Relu6(x, QEngine.X86),
            "Hardtanh" => (_, x) => QActivation.Hardtanh(x, 0f, 6f, QEngine.X86),
            "AdaptiveAvgPool2d" => (_, x) => QPool.AdaptiveAvgPool2d(x, 1, 1, QEngine.X86),
            "Identity" => (_, x) => x,
            _ when name == "pool" => (_, x) => QPool.AdaptiveAvgPool2d(x, 1, 1, QEngine.X86),
            _ when name is "bn1" or "act1" or "bn2" or "act2" => (_, x) => x,
            _ => (_, _) => throw new InvalidOperationException($"{name}: no step for kind {kind}"),
        };
    }

    /// <summary>The golden run with <paramref name="layer"/>'s output replaced and every later layer re-run on it.</summary>
    public List<(string Name, object Value)> Perturb(string layer, QTensor replaced)
    {
        var result = new List<(string, object)>();
        int at = IndexOf(layer);
        QTensor current = replaced;
        for (int i = 0; i < Golden.Layers.Count; i++)
        {
            var (name, value) = Golden.Layers[i];
            if (i < at) result.Add((name, value));
            else if (i == at) result.Add((name, replaced));
            else
            {
                current = _steps[i](i, current);
                result.Add((name, current));
            }
        }
        return result;
    }

    /// <summary>Re-runs every layer after the first from the golden input of the first: must equal the golden run.</summary>
    public List<(string Name, object Value)> Rerun() => Perturb(Names[0], Output(Names[0]));

    public static QTensor WithInts(QTensor like, Func<int, long, long> f)
    {
        var t = Tensor.Zeros(like.IntRepr.DType, like.Shape);
        var src = like.IntRepr;
        for (int i = 0; i < like.Length; i++)
        {
            long v = f(i, (long)src.GetDouble(i));
            switch (t.Data)
            {
                case byte[] b: b[i] = (byte)v; break;   // unchecked: a uint8 backend wraps
                case sbyte[] sb: sb[i] = (sbyte)v; break;
                case int[] n: n[i] = (int)v; break;
            }
        }
        return new QTensor(t, like.QParams);
    }
}
