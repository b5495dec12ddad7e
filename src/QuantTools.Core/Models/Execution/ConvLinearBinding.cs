using System.Reflection;
using QuantTools.Core.Kernels;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution;

/// <summary>
/// Prepacked conv / linear layers for the executor. The kernels (<c>PackedConvWeight</c>, <c>PackedLinearWeight</c>
/// in QuantTools.Core.Kernels.Conv / .Linear) are bound by name once per layer, so this build runs whether or not
/// they are present; without them a conv or linear layer is a NotSupported error naming the layer.
/// </summary>
internal static class ConvLinearBinding
{
    private const string ConvType = "QuantTools.Core.Kernels.Conv.PackedConvWeight";
    private const string LinearType = "QuantTools.Core.Kernels.Linear.PackedLinearWeight";

    public static bool Available => Find(ConvType) is not null && Find(LinearType) is not null;

    private static Type? Find(string name) => typeof(QTensor).Assembly.GetType(name, throwOnError: false);

    public delegate QTensor StaticRun(QTensor x, double outScale, long outZeroPoint, bool relu);
    public delegate Tensor DynamicRun(Tensor x, bool relu, bool reduceRange);

    private static Exception Unwrap(TargetInvocationException e) => e.InnerException ?? e;

    public static StaticRun PrepareConv(QTensor weight, Tensor? bias, int[] stride, int[] padding, int[] dilation, int groups,
        bool transposed, int[] outputPadding, QEngine engine, string layer)
    {
        var t = Find(ConvType) ?? throw new QuantToolsException(ErrorCode.NotSupported,
            "quantized conv kernels are not in this build (PackedConvWeight)", layer);
        var create = t.GetMethod("Create", BindingFlags.Public | BindingFlags.Static,
            [typeof(QTensor), typeof(Tensor), typeof(int[]), typeof(int[]), typeof(int[]), typeof(int), typeof(bool), typeof(int[]), typeof(QEngine)])
            ?? throw new QuantToolsException(ErrorCode.NotSupported, "PackedConvWeight.Create has an unexpected signature", layer);
        object packed;
        try
        {
            packed = create.Invoke(null, [weight, bias, stride, padding, dilation, groups, transposed, outputPadding, engine])!;
        }
        catch (TargetInvocationException e) when (e.InnerException is QuantToolsException q)
        {
            throw new QuantToolsException(q.Code, q.Message, layer, q);
        }
        var run = t.GetMethod("Run", [typeof(QTensor), typeof(double), typeof(long), typeof(bool)])
            ?? throw new QuantToolsException(ErrorCode.NotSupported, "PackedConvWeight.Run has an unexpected signature", layer);
        return run.CreateDelegate<StaticRun>(packed);
    }

    public static (StaticRun Run, DynamicRun Dynamic) PrepareLinear(QTensor weight, Tensor? bias, QEngine engine, string layer)
    {
        var t = Find(LinearType) ?? throw new QuantToolsException(ErrorCode.NotSupported,
            "quantized linear kernels are not in this build (PackedLinearWeight)", layer);
        var create = t.GetMethod("Create", BindingFlags.Public | BindingFlags.Static, [typeof(QTensor), typeof(Tensor), typeof(QEngine)])
            ?? throw new QuantToolsException(ErrorCode.NotSupported, "PackedLinearWeight.Create has an unexpected signature", layer);
        object packed;
        try
        {
            packed = create.Invoke(null, [weight, bias, engine])!;
        }
        catch (TargetInvocationException e) when (e.InnerException is QuantToolsException q)
        {
            throw new QuantToolsException(q.Code, q.Message, layer, q);
        }
        var run = t.GetMethod("Run", [typeof(QTensor), typeof(double), typeof(long), typeof(bool)])
            ?? throw new QuantToolsException(ErrorCode.NotSupported, "PackedLinearWeight.Run has an unexpected signature", layer);
        var dyn = t.GetMethod("RunDynamic", [typeof(Tensor), typeof(bool), typeof(bool)])
            ?? throw new QuantToolsException(ErrorCode.NotSupported, "PackedLinearWeight.RunDynamic has an unexpected signature", layer);
        return (run.CreateDelegate<StaticRun>(packed), dyn.CreateDelegate<DynamicRun>(packed));
    }

    internal static Exception Rethrow(Exception e) => e is TargetInvocationException t ? Unwrap(t) : e;
}
