using System.Numerics;
using System.Text;

namespace QuantTools.Core.Formats.Pickle;

/// <summary>
/// Decides what the globals of a pickle mean. Nothing from the file is ever executed: a global either maps to a
/// known, side-effect-free .NET behaviour here, or loading stops with an error naming it.
/// The base class knows the harmless builtins (OrderedDict, set, frozenset, slice, complex, latin-1 bytes);
/// <c>QuantTools.Core.Formats.Torch.TorchPickleResolver</c> adds PyTorch's tensor, storage, dtype and class globals.
/// </summary>
public class PickleResolver
{
    /// <summary>Returns the value GLOBAL / STACK_GLOBAL push for <paramref name="module"/>.<paramref name="name"/>, or throws.</summary>
    public virtual object ResolveGlobal(string module, string name)
    {
        switch (module, name)
        {
            case ("collections", "OrderedDict"):
            case ("builtins" or "__builtin__", "set" or "frozenset" or "slice" or "complex" or "bytearray" or "bytes"):
            case ("_codecs", "encode"):
                return new PyGlobal(module == "__builtin__" ? "builtins" : module, name);
        }
        throw Forbidden(module, name);
    }

    /// <summary>REDUCE: <paramref name="callable"/>(*<paramref name="args"/>).</summary>
    public virtual object? Call(object? callable, object?[] args)
    {
        if (callable is PyGlobal g)
        {
            switch (g.FullName)
            {
                case "collections.OrderedDict":
                {
                    var d = new PyDict { IsOrderedDict = true };
                    if (args.Length == 1 && args[0] is not null)
                        foreach (var item in Iterate(args[0], "OrderedDict argument"))
                        {
                            if (item is not object?[] { Length: 2 } kv && item is not List<object?> { Count: 2 })
                                throw Malformed("OrderedDict items must be (key, value) pairs");
                            var pair = item as object?[] ?? ((List<object?>)item!).ToArray();
                            d.Set(pair[0], pair[1]);
                        }
                    else if (args.Length > 1) throw Malformed($"OrderedDict takes at most 1 argument, got {args.Length}");
                    return d;
                }
                case "builtins.set":
                case "builtins.frozenset":
                {
                    var s = new PySet { IsFrozen = g.Name == "frozenset" };
                    if (args.Length == 1) s.Items.AddRange(Iterate(args[0], g.FullName + " argument"));
                    else if (args.Length > 1) throw Malformed($"{g.Name} takes at most 1 argument, got {args.Length}");
                    return s;
                }
                case "builtins.slice":
                    return new PickleObject(g, args);
                case "builtins.complex":
                    return new Complex(args.Length > 0 ? AsDouble(args[0], "complex real part") : 0,
                        args.Length > 1 ? AsDouble(args[1], "complex imaginary part") : 0);
                case "builtins.bytes":
                case "builtins.bytearray":
                    if (args.Length == 0) return Array.Empty<byte>();
                    if (args[0] is byte[] b) return b;
                    if (args.Length == 2 && args[0] is string s1 && args[1] is "latin1" or "latin-1") return Latin1(s1);
                    throw Malformed($"{g.Name}() is only accepted with bytes or (str, 'latin1') arguments");
                case "_codecs.encode":
                    if (args.Length == 2 && args[0] is string s2 && args[1] is "latin1" or "latin-1") return Latin1(s2);
                    throw Malformed("_codecs.encode is only accepted as encode(str, 'latin1')");
            }
        }
        throw Malformed($"REDUCE called {Describe(callable)}, which is not a callable this reader accepts");
    }

    /// <summary>NEWOBJ / NEWOBJ_EX / INST / OBJ: <paramref name="cls"/>.__new__(cls, *args).</summary>
    public virtual object? New(object? cls, object?[] args)
    {
        if (cls is PyGlobal g && g.FullName is "collections.OrderedDict" or "builtins.set" or "builtins.frozenset")
            return Call(cls, []);
        throw Malformed($"NEWOBJ on {Describe(cls)}, which is not a class this reader accepts");
    }

    /// <summary>BUILD on a value that is not a <see cref="PickleObject"/> or <see cref="PyDict"/> (PickleObjects and dicts are handled by the VM).</summary>
    public virtual object? Build(object? target, object? state) =>
        throw Malformed($"BUILD on {Describe(target)} is not supported");

    /// <summary>PERSID / BINPERSID.</summary>
    public virtual object? PersistentLoad(object? pid) =>
        throw new QuantToolsException(ErrorCode.UnsupportedFormat, "the pickle references external (persistent) objects, which this reader does not resolve");

    public static QuantToolsException Forbidden(string module, string name) =>
        new(ErrorCode.NotSupported,
            $"pickle global '{module}.{name}' is not allowed: QuantTools never runs code from a file and only accepts the " +
            "PyTorch tensor, storage, dtype, qscheme and container globals that checkpoints contain (as torch.load(weights_only=True))");

    public static QuantToolsException Malformed(string message) => new(ErrorCode.CorruptFile, message);

    public static string Describe(object? v) => v switch
    {
        null => "None",
        PyGlobal g => $"'{g.FullName}'",
        PickleObject o => $"a {o.ClassName} object",
        string => "a str",
        long or BigInteger => "an int",
        double => "a float",
        object?[] t => $"a {t.Length}-tuple",
        _ => "a " + v.GetType().Name,
    };

    public static IEnumerable<object?> Iterate(object? v, string what) => v switch
    {
        List<object?> l => l,
        object?[] t => t,
        PySet s => s,
        PyDict d => d.Keys,
        _ => throw Malformed($"{what} must be a list or tuple, got {Describe(v)}"),
    };

    public static double AsDouble(object? v, string what) => v switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        BigInteger bi => (double)bi,
        _ => throw Malformed($"{what} must be a number, got {Describe(v)}"),
    };

    private static byte[] Latin1(string s)
    {
        var r = new byte[s.Length];
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] > 255) throw Malformed("latin-1 encoded bytes contain a character above U+00FF");
            r[i] = (byte)s[i];
        }
        return r;
    }
}
