using System.Collections;
using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.PowerShell.Internal;

/// <summary>Turns what a user pipes (a Tensor, a QTensor, numbers, arrays of numbers) into Core tensors.</summary>
internal static class TensorArgument
{
    public static object Unwrap(object? o) => o is PSObject ps ? ps.BaseObject : o ?? throw new QuantToolsException(ErrorCode.InvalidArgument, "input is null");

    /// <summary>A float tensor: Tensor as is, QTensor dequantized, numbers and arrays of numbers as a 1-d float32 tensor.</summary>
    public static Tensor ToTensor(object? input)
    {
        var o = Unwrap(input);
        switch (o)
        {
            case Tensor t: return t;
            case QTensor q: return Quantizer.Dequantize(q);
            case float[] f: return Tensor.FromArray((float[])f.Clone(), f.Length);
            case double[] d: return Tensor.FromArray(d.Select(v => (float)v).ToArray(), d.Length);
            case string s:
                throw new QuantToolsException(ErrorCode.InvalidArgument,
                    $"'{s}' is a string, not a tensor; use Import-QuantTensor to read a file");
            case IEnumerable e:
                var values = new List<float>();
                foreach (var item in e) values.Add(ToFloat(item));
                return Tensor.FromArray(values.ToArray(), values.Count);
            default:
                return Tensor.FromArray([ToFloat(o)], 1);
        }
    }

    public static QTensor ToQTensor(object? input) => Unwrap(input) switch
    {
        QTensor q => q,
        var o => throw new QuantToolsException(ErrorCode.InvalidArgument,
            $"expected a quantized tensor (QTensor), got {o.GetType().Name}; use ConvertTo-Quantized first"),
    };

    private static float ToFloat(object? item)
    {
        var v = item is PSObject ps ? ps.BaseObject : item;
        return v switch
        {
            float f => f,
            double d => (float)d,
            int i => i,
            long l => l,
            short s => s,
            byte b => b,
            sbyte sb => sb,
            decimal m => (float)m,
            bool => throw new QuantToolsException(ErrorCode.InvalidArgument, "booleans are not tensor values"),
            IConvertible c when v is not string => Convert.ToSingle(c, System.Globalization.CultureInfo.InvariantCulture),
            _ => throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"cannot use a value of type {v?.GetType().Name ?? "null"} as a tensor element"),
        };
    }

    /// <summary>The name a piped tensor carries (a Name note property added by Import-QuantTensor), if any.</summary>
    public static string? NameOf(object? input) =>
        input is not null && PSObject.AsPSObject(input).Properties["Name"]?.Value is string s && !string.IsNullOrEmpty(s) ? s : null;

    /// <summary>Wraps a tensor with a Name note property, as Import-QuantTensor emits it.</summary>
    public static PSObject WithName(object tensor, string name)
    {
        var ps = PSObject.AsPSObject(tensor);
        ps.Properties.Add(new PSNoteProperty("Name", name));
        return ps;
    }
}
