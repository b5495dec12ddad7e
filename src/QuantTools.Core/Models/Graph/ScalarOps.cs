using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Graph;

/// <summary>
/// Non-tensor operations of TorchScript (ints, floats, bools, strings, lists): the front end folds them when every
/// argument is known, and the executor runs the same code when an argument is only known at run time
/// (<c>torch.size(x)</c> feeding a <c>view</c>).
/// </summary>
internal static class ScalarOps
{
    public static readonly HashSet<string> Names = new(StringComparer.Ordinal)
    {
        "aten::len", "aten::eq", "aten::ne", "aten::lt", "aten::gt", "aten::le", "aten::ge", "aten::add", "aten::sub",
        "aten::mul", "aten::floordiv", "aten::div", "aten::neg", "aten::__not__", "aten::__is__", "aten::__isnot__",
        "aten::Float", "aten::Int", "aten::Bool", "aten::__getitem__", "prim::ListConstruct", "prim::TupleConstruct",
        "prim::min", "prim::max", "aten::remainder", "aten::__and__", "aten::__or__",
    };

    public static bool IsScalar(object? v) => v is null or long or double or bool or string;

    public static object? Eval(string op, IReadOnlyList<object?> a)
    {
        switch (op)
        {
            case "prim::ListConstruct": return a.ToList();
            case "prim::TupleConstruct": return a.ToArray();
            case "aten::len":
                return a[0] switch
                {
                    List<object?> l => (long)l.Count,
                    object?[] tu => (long)tu.Length,
                    string s => (long)s.Length,
                    _ => throw Bad(op, a),
                };
            case "aten::__getitem__":
            {
                var idx = ToLong(a[1], op);
                IReadOnlyList<object?> seq = a[0] switch
                {
                    List<object?> l => l,
                    object?[] tu => tu,
                    _ => throw Bad(op, a),
                };
                if (idx < 0) idx += seq.Count;
                if (idx < 0 || idx >= seq.Count) throw new QuantToolsException(ErrorCode.InvalidArgument, $"index {ToLong(a[1], op)} out of range for a sequence of {seq.Count}");
                return seq[(int)idx];
            }
            case "aten::eq": return Equal(a[0], a[1]);
            case "aten::ne": return !Equal(a[0], a[1]);
            case "aten::__is__": return a[0] is null ? a[1] is null : ReferenceEquals(a[0], a[1]) || Equal(a[0], a[1]);
            case "aten::__isnot__": return !(a[0] is null ? a[1] is null : ReferenceEquals(a[0], a[1]) || Equal(a[0], a[1]));
            case "aten::__not__": return !ToBool(a[0], op);
            case "aten::__and__": return ToBool(a[0], op) && ToBool(a[1], op);
            case "aten::__or__": return ToBool(a[0], op) || ToBool(a[1], op);
            case "aten::lt": return Compare(a[0], a[1], op) < 0;
            case "aten::gt": return Compare(a[0], a[1], op) > 0;
            case "aten::le": return Compare(a[0], a[1], op) <= 0;
            case "aten::ge": return Compare(a[0], a[1], op) >= 0;
            case "aten::add":
                if (a[0] is List<object?> l1 && a[1] is List<object?> l2) return l1.Concat(l2).ToList();
                if (a[0] is string s1 && a[1] is string s2) return s1 + s2;
                return Arith(a[0], a[1], op, (x, y) => x + y, (x, y) => x + y);
            case "aten::sub": return Arith(a[0], a[1], op, (x, y) => x - y, (x, y) => x - y);
            case "aten::mul": return Arith(a[0], a[1], op, (x, y) => x * y, (x, y) => x * y);
            case "aten::floordiv":
                return Arith(a[0], a[1], op, (x, y) =>
                {
                    if (y == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "integer division by zero");
                    long q = x / y;
                    return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
                }, (x, y) => Math.Floor(x / y));
            case "aten::remainder":
                return Arith(a[0], a[1], op, (x, y) =>
                {
                    if (y == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "integer modulo by zero");
                    long r = x % y;
                    return r != 0 && (r < 0) != (y < 0) ? r + y : r;
                }, (x, y) => x - Math.Floor(x / y) * y);
            case "aten::div": return ToDouble(a[0], op) / ToDouble(a[1], op);
            case "aten::neg": return a[0] is long n ? -n : -ToDouble(a[0], op);
            case "aten::Float": return a[0] is Tensor tf ? SingleElement(tf, op) : ToDouble(a[0], op);
            case "aten::Int": return a[0] is Tensor ti ? (long)SingleElement(ti, op) : a[0] is double d ? (long)Math.Truncate(d) : ToLong(a[0], op);
            case "aten::Bool": return a[0] is Tensor tb ? SingleElement(tb, op) != 0 : ToBool(a[0], op);
            case "prim::min": return Compare(a[0], a[1], op) <= 0 ? a[0] : a[1];
            case "prim::max": return Compare(a[0], a[1], op) >= 0 ? a[0] : a[1];
            default: throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"scalar op {op} is not supported");
        }
    }

    private static double SingleElement(Tensor t, string op) =>
        t.Length == 1 ? t.GetDouble(0) : throw new QuantToolsException(ErrorCode.InvalidArgument, $"{op}: a tensor of {t.Length} elements is not a scalar");

    private static QuantToolsException Bad(string op, IReadOnlyList<object?> a) =>
        new(ErrorCode.UnsupportedOperator, $"{op} is not supported for ({string.Join(", ", a.Select(TypeOf))})");

    public static string TypeOf(object? v) => v switch
    {
        null => "None",
        long => "int",
        double => "float",
        bool => "bool",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        _ => v.GetType().Name,
    };

    public static long ToLong(object? v, string op) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"{op}: expected an int, got {TypeOf(v)}"),
    };

    public static double ToDouble(object? v, string op) => v switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        Tensor { Length: 1 } t => t.GetDouble(0),
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"{op}: expected a number, got {TypeOf(v)}"),
    };

    public static bool ToBool(object? v, string op) => v switch
    {
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        null => false,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"{op}: expected a bool, got {TypeOf(v)}"),
    };

    public static bool Equal(object? x, object? y)
    {
        if (x is null || y is null) return x is null && y is null;
        if (x is string sx) return y is string sy && sx == sy;
        if (x is List<object?> lx) return y is List<object?> ly && lx.Count == ly.Count && lx.Zip(ly).All(p => Equal(p.First, p.Second));
        if (x is object?[] tx) return y is object?[] ty && tx.Length == ty.Length && tx.Zip(ty).All(p => Equal(p.First, p.Second));
        if (x is long or bool && y is long or bool) return ToLong(x, "eq") == ToLong(y, "eq");
        if (x is long or double or bool && y is long or double or bool) return ToDouble(x, "eq") == ToDouble(y, "eq");
        return ReferenceEquals(x, y);
    }

    private static int Compare(object? x, object? y, string op)
    {
        if (x is long lx && y is long ly) return lx.CompareTo(ly);
        if (x is string sx && y is string sy) return string.CompareOrdinal(sx, sy);
        return ToDouble(x, op).CompareTo(ToDouble(y, op));
    }

    private static object Arith(object? x, object? y, string op, Func<long, long, long> fi, Func<double, double, double> fd)
    {
        if (x is long or bool && y is long or bool) return fi(ToLong(x, op), ToLong(y, op));
        return fd(ToDouble(x, op), ToDouble(y, op));
    }

    /// <summary>c10::ScalarType numbers (as TorchScript code compares <c>dtype</c> attributes with them).</summary>
    public static long ScalarTypeCode(DType d) => d switch
    {
        DType.UInt8 => 0, DType.Int8 => 1, DType.Int16 => 2, DType.Int32 => 3, DType.Int64 => 4, DType.Float16 => 5,
        DType.Float32 => 6, DType.Float64 => 7, DType.Bool => 11, DType.QInt8 => 12, DType.QUInt8 => 13, DType.QInt32 => 14,
        DType.BFloat16 => 15, DType.QUInt4x2 => 16, DType.QUInt2x4 => 17,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"no scalar type number for {d.TorchName()}"),
    };

    public static DType DTypeOfCode(long code) => code switch
    {
        0 => DType.UInt8, 1 => DType.Int8, 2 => DType.Int16, 3 => DType.Int32, 4 => DType.Int64, 5 => DType.Float16,
        6 => DType.Float32, 7 => DType.Float64, 11 => DType.Bool, 12 => DType.QInt8, 13 => DType.QUInt8, 14 => DType.QInt32,
        15 => DType.BFloat16, 16 => DType.QUInt4x2, 17 => DType.QUInt2x4,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"unknown scalar type number {code}"),
    };
}
