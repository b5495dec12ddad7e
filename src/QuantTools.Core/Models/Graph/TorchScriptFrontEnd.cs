using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Models.Execution.Ops;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Graph;

/// <summary>
/// Builds a <see cref="ModelGraph"/> from a TorchScript archive by interpreting the <c>forward</c> code under
/// <c>code/</c> symbolically: module attributes, constants and control flow on constants are evaluated while building;
/// every tensor operation becomes a node; submodule forwards, methods and helper functions are inlined. Ops without a
/// handler in <see cref="OpRegistry"/>, and constructs outside the subset, are <see cref="ErrorCode.UnsupportedOperator"/> errors
/// that name the op and the source line.
/// </summary>
public sealed class TorchScriptFrontEnd
{
    /// <summary>Tensor ops the front end accepts: those the executor runs (<see cref="OpRegistry.TensorOps"/>).</summary>
    public static IReadOnlySet<string> SupportedTensorOps => OpRegistry.TensorOps;

    private readonly TorchCheckpoint _ck;
    private readonly Dictionary<string, CodeFile> _files = new(StringComparer.Ordinal);
    private readonly List<GraphNode> _nodes = new();
    private readonly List<KeyValuePair<string, string>> _layers = new();
    private readonly Dictionary<string, string> _layerKinds = new(StringComparer.Ordinal);
    private readonly HashSet<string> _leaves = new(StringComparer.Ordinal);
    private readonly Stack<Frame> _stack = new();
    private int _counter;

    private TorchScriptFrontEnd(TorchCheckpoint ck) => _ck = ck;

    /// <summary>Builds the graph of a TorchScript checkpoint's <c>forward</c>.</summary>
    public static ModelGraph Build(TorchCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (checkpoint.Kind != CheckpointKind.TorchScript || checkpoint.Modules is null)
            throw new QuantToolsException(ErrorCode.UnsupportedFormat, $"a model graph needs a TorchScript archive, got a {checkpoint.Kind} checkpoint", checkpoint.Path);
        return new TorchScriptFrontEnd(checkpoint).BuildRoot();
    }

    /// <summary>Loads a TorchScript file and builds its graph.</summary>
    public static ModelGraph Build(string path) => Build(TorchCheckpoint.Load(path));

    // ------------------------------------------------------------------ build-time values

    internal sealed record Sym(string Name);
    private sealed record ModuleRef(TorchModule Module);
    private sealed record BoundMethod(TorchModule Module, string Name);
    private sealed record Namespace(string Path);
    private sealed record TypeValue(string Text);
    private sealed class Undefined
    {
        public static readonly Undefined Value = new();
    }

    private sealed class Frame
    {
        public required CodeFile File { get; init; }
        public required TorchModule? Self { get; init; }
        public required string ModulePath { get; init; }
        public Dictionary<string, object?> Vars { get; } = new(StringComparer.Ordinal);
        public int Line { get; set; }
        public object? ReturnValue { get; set; }
    }

    private enum Flow { Normal, Return }

    private sealed class ModelRaised(string message) : Exception(message);

    // ------------------------------------------------------------------ root

    private ModelGraph BuildRoot()
    {
        var root = _ck.Modules!;
        var (file, cls) = ClassOf(root);
        if (!cls.Methods.TryGetValue("forward", out var fwd))
            throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"class {cls.Name} has no forward method", _ck.Path);
        var inputs = new List<string>();
        var args = new List<object?>();
        foreach (var p in fwd.Params.Skip(1))
        {
            inputs.Add(p.Name);
            args.Add(new Sym(p.Name));
        }
        object? result;
        try
        {
            result = Invoke(file, fwd, root, args, [], null);
        }
        catch (ModelRaised e)
        {
            throw new QuantToolsException(ErrorCode.UnsupportedOperator, e.Message, _ck.Path);
        }
        var outputs = new List<string>();
        void Collect(object? v)
        {
            switch (v)
            {
                case Sym s: outputs.Add(s.Name); break;
                case object?[] t: foreach (var x in t) Collect(x); break;
                default:
                    throw new QuantToolsException(ErrorCode.UnsupportedOperator,
                        $"forward returns {ScalarOps.TypeOf(v)}, not tensors", _ck.Path);
            }
        }
        Collect(result);
        return new ModelGraph
        {
            Source = _ck.Path, Inputs = inputs, Outputs = outputs, Nodes = _nodes, LayerOutputs = _layers,
            LayerKinds = _layerKinds, LeafLayers = _leaves,
        };
    }

    private (CodeFile File, ClassDef Class) ClassOf(TorchModule m)
    {
        string cn = m.ClassName;
        int dot = cn.LastIndexOf('.');
        string fileKey = (dot < 0 ? cn : cn[..dot]).Replace('.', '/') + ".py";
        var file = GetFile(fileKey) ?? throw new QuantToolsException(ErrorCode.UnsupportedOperator,
            $"no code/{fileKey} for module '{m.Path}' ({cn})", _ck.Path);
        var name = cn[(dot + 1)..];
        if (!file.Classes.TryGetValue(name, out var cls))
            throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"class {name} not found in code/{fileKey}", _ck.Path);
        return (file, cls);
    }

    private CodeFile? GetFile(string key)
    {
        if (_files.TryGetValue(key, out var f)) return f;
        if (!_ck.Code.TryGetValue(key, out var text)) return null;
        f = TorchScriptParser.ParseFile(key, text);
        _files[key] = f;
        return f;
    }

    // ------------------------------------------------------------------ errors

    private SourceLocation? Here()
    {
        if (_stack.Count == 0) return null;
        var fr = _stack.Peek();
        return fr.File.Location(fr.Line);
    }

    private QuantToolsException Unsupported(string what)
    {
        var loc = Here();
        var modulePath = _stack.Count > 0 ? _stack.Peek().ModulePath : "";
        string where = loc is null ? "" : $" at {loc}";
        string mod = modulePath.Length > 0 ? $" in module '{modulePath}'" : "";
        return new QuantToolsException(ErrorCode.UnsupportedOperator, $"{what}{mod}{where}", loc is null ? _ck.Path : $"{loc.File}:{loc.Line}");
    }

    // ------------------------------------------------------------------ calls

    private object? Invoke(CodeFile file, FunctionDef f, TorchModule? self, IReadOnlyList<object?> args,
        IReadOnlyList<(string Name, object? Value)> kwargs, string? modulePath)
    {
        if (_stack.Count > 400) throw Unsupported("calls nested deeper than 400 levels");
        var frame = new Frame { File = file, Self = self, ModulePath = modulePath ?? (_stack.Count > 0 ? _stack.Peek().ModulePath : ""), Line = f.Line };
        var ps = f.Params;
        int ai = 0;
        for (int i = 0; i < ps.Count; i++)
        {
            var p = ps[i];
            object? v;
            if (i == 0 && self is not null && p.Name == "self") v = new ModuleRef(self);
            else if (ai < args.Count) v = args[ai++];
            else if (kwargs.FirstOrDefault(k => k.Name == p.Name) is { Name: not null } kw) v = kw.Value;
            else if (p.Default is not null)
            {
                _stack.Push(frame);
                try { v = Eval(p.Default); } finally { _stack.Pop(); }
            }
            else throw Unsupported($"missing argument '{p.Name}' of {f.Name}");
            frame.Vars[p.Name] = v;
        }
        if (ai < args.Count) throw Unsupported($"too many arguments to {f.Name}");
        _stack.Push(frame);
        try
        {
            var flow = ExecBlock(f.Body);
            return flow == Flow.Return ? frame.ReturnValue : null;
        }
        finally
        {
            _stack.Pop();
        }
    }

    private object? CallModuleMethod(TorchModule m, string method, IReadOnlyList<object?> args, IReadOnlyList<(string, object?)> kwargs)
    {
        var (file, cls) = ClassOf(m);
        if (!cls.Methods.TryGetValue(method, out var f))
            throw Unsupported($"method {method} of module '{m.Path}' ({m.Kind}) not found");
        var result = Invoke(file, f, m, args, kwargs, m.Path);
        if (method == "forward" && m.Path.Length > 0)
        {
            _layerKinds.TryAdd(m.Path, m.Kind);
            if (m.Children.Count == 0) _leaves.Add(m.Path);
            if (result is Sym s && !_layers.Any(kv => kv.Key == m.Path))
                _layers.Add(new KeyValuePair<string, string>(m.Path, s.Name));
        }
        return result;
    }

    private object? CallFunction(string qualified, IReadOnlyList<object?> args, IReadOnlyList<(string, object?)> kwargs)
    {
        // __torch__.a.b.c.func → code/__torch__/a/b/c.py : func (or .../c.py : Class.method is not supported)
        var parts = qualified.Split('.');
        for (int k = parts.Length - 1; k >= 1; k--)
        {
            var file = GetFile(string.Join('/', parts[..k]) + ".py");
            if (file is null) continue;
            if (k == parts.Length - 1 && file.Functions.TryGetValue(parts[^1], out var f))
                return Invoke(file, f, null, args, kwargs, null);
            break;
        }
        throw Unsupported($"function {qualified} not found in the archive's code");
    }

    // ------------------------------------------------------------------ statements

    private Flow ExecBlock(IReadOnlyList<Stmt> body)
    {
        foreach (var s in body)
            if (Exec(s) == Flow.Return) return Flow.Return;
        return Flow.Normal;
    }

    private Flow Exec(Stmt s)
    {
        var fr = _stack.Peek();
        fr.Line = s.Line;
        switch (s)
        {
            case PassStmt: return Flow.Normal;
            case ExprStmt e:
                Eval(e.Value);
                return Flow.Normal;
            case ReturnStmt r:
                fr.ReturnValue = r.Value is null ? null : Eval(r.Value);
                return Flow.Return;
            case AssignStmt a:
            {
                var v = Eval(a.Value);
                if (!a.Unpack && a.Targets.Count == 1)
                {
                    Assign(a.Targets[0], v);
                    return Flow.Normal;
                }
                var items = Unpack(v, a.Targets.Count);
                for (int i = 0; i < a.Targets.Count; i++) Assign(a.Targets[i], items[i]);
                return Flow.Normal;
            }
            case IfStmt i: return ExecIf(i);
            case ForStmt f:
            {
                var iter = Eval(f.Iter);
                IEnumerable<object?> seq = iter switch
                {
                    List<object?> l => l.ToList(),
                    object?[] t => t,
                    _ => throw Unsupported($"for over {ScalarOps.TypeOf(iter)} (only constant ranges and lists)"),
                };
                int n = 0;
                foreach (var item in seq)
                {
                    if (++n > 100_000) throw Unsupported("loop longer than 100000 iterations");
                    if (f.Targets.Count == 1) fr.Vars[f.Targets[0]] = item;
                    else
                    {
                        var parts = Unpack(item, f.Targets.Count);
                        for (int k = 0; k < parts.Count; k++) fr.Vars[f.Targets[k]] = parts[k];
                    }
                    if (ExecBlock(f.Body) == Flow.Return) return Flow.Return;
                    fr.Line = s.Line;
                }
                return Flow.Normal;
            }
            default:
                throw Unsupported($"statement {s.GetType().Name}");
        }
    }

    private void Assign(Expr target, object? v)
    {
        var fr = _stack.Peek();
        switch (target)
        {
            case NameExpr n: fr.Vars[n.Name] = v; break;
            case AttrExpr { Target: NameExpr { Name: "self" } } at:
                throw Unsupported($"assignment to module attribute self.{at.Name} in forward");
            default: throw Unsupported($"assignment to {target.GetType().Name}");
        }
    }

    private IReadOnlyList<object?> Unpack(object? v, int n)
    {
        switch (v)
        {
            case object?[] t when t.Length == n: return t;
            case List<object?> l when l.Count == n: return l;
            case Sym s:
            {
                var outs = Enumerable.Range(0, n).Select(_ => NewName("item")).ToList();
                Emit("prim::ListUnpack", [Operand.Of(s.Name)], outs);
                return outs.Select(o => (object?)new Sym(o)).ToList();
            }
            default: throw Unsupported($"cannot unpack {ScalarOps.TypeOf(v)} into {n} values");
        }
    }

    private static bool IsRaise(IReadOnlyList<Stmt> body) =>
        body.Count > 0 && body[0] is ExprStmt { Value: CallExpr { Func: AttrExpr { Name: "RaiseException", Target: AttrExpr { Name: "prim", Target: NameExpr { Name: "ops" } } } } };

    private static bool IsNoop(IReadOnlyList<Stmt> body) => body.All(s => s is PassStmt);

    private Flow ExecIf(IfStmt s)
    {
        var c = Eval(s.Cond);
        if (c is Sym sym)
        {
            // A check on run-time values whose only effect is raising (rank checks): keep it as a run-time assertion.
            if (IsRaise(s.Then) && IsNoop(s.Else))
            {
                EmitRaiseIf(sym, s.Then, negate: false);
                return Flow.Normal;
            }
            if (IsNoop(s.Then) && IsRaise(s.Else))
            {
                EmitRaiseIf(sym, s.Else, negate: true);
                return Flow.Normal;
            }
            throw Unsupported("an 'if' on a value known only at run time (data-dependent control flow)");
        }
        bool b = c switch
        {
            bool x => x,
            long l => l != 0,
            double d => d != 0,
            null => false,
            string str => str.Length > 0,
            List<object?> l => l.Count > 0,
            _ => throw Unsupported($"an 'if' on {ScalarOps.TypeOf(c)}"),
        };
        return ExecBlock(b ? s.Then : s.Else);
    }

    private void EmitRaiseIf(Sym cond, IReadOnlyList<Stmt> raiseBody, bool negate)
    {
        var call = (CallExpr)((ExprStmt)raiseBody[0]).Value;
        string msg = call.Args.Count > 0 && Eval(call.Args[0]) is string m ? m : "model raised an exception";
        Emit("prim::RaiseIf", [Operand.Of(cond.Name), Operand.Const(negate), Operand.Const(msg)], []);
    }

    // ------------------------------------------------------------------ expressions

    private object? Eval(Expr e)
    {
        switch (e)
        {
            case ConstExpr c: return c.Value;
            case TypeExpr t: return new TypeValue(t.Text);
            case NameExpr n: return LookupName(n.Name);
            case ListExpr l: return l.Items.Select(Eval).ToList();
            case TupleExpr t: return t.Items.Select(Eval).ToArray();
            case AttrExpr a: return GetAttr(Eval(a.Target), a.Name);
            case SubscriptExpr s:
            {
                var target = Eval(s.Target);
                var idx = Eval(s.Index);
                return Scalar("aten::__getitem__", [target, idx]);
            }
            case UnaryExpr u:
            {
                var v = Eval(u.Operand);
                return u.Op switch
                {
                    "-" => Scalar("aten::neg", [v]),
                    "not" => Scalar("aten::__not__", [v]),
                    _ => throw Unsupported($"unary operator {u.Op}"),
                };
            }
            case BinaryExpr b:
            {
                var l = Eval(b.Left);
                var r = Eval(b.Right);
                string op = b.Op switch
                {
                    "+" => "aten::add", "-" => "aten::sub", "*" => "aten::mul", "/" => "aten::div", "//" => "aten::floordiv",
                    "%" => "aten::remainder", "==" => "aten::eq", "!=" => "aten::ne", "<" => "aten::lt", ">" => "aten::gt",
                    "<=" => "aten::le", ">=" => "aten::ge", "is" => "aten::__is__", "is not" => "aten::__isnot__",
                    "and" => "aten::__and__", "or" => "aten::__or__",
                    _ => throw Unsupported($"operator '{b.Op}'"),
                };
                if (l is Sym || r is Sym) return Scalar(op, [l, r]);
                return Scalar(op, [l, r]);
            }
            case CallExpr call: return EvalCall(call);
            default: throw Unsupported($"expression {e.GetType().Name}");
        }
    }

    private object? LookupName(string name)
    {
        var fr = _stack.Peek();
        if (fr.Vars.TryGetValue(name, out var v))
        {
            if (v is Undefined) throw Unsupported($"variable '{name}' used before it is set");
            return v;
        }
        return name switch
        {
            "torch" or "ops" or "__torch__" or "annotate" or "unchecked_cast" or "uninitialized" or "float" or "int" or "bool"
                or "len" or "range" or "getattr" or "isinstance" or "str" or "list" or "min" or "max" or "abs" => new Namespace(name),
            "inf" => double.PositiveInfinity,
            "nan" => double.NaN,
            _ => fr.File.Functions.TryGetValue(name, out _) ? new Namespace("__local__." + name)
                : throw Unsupported($"name '{name}' is not defined"),
        };
    }

    private object? GetAttr(object? target, string name)
    {
        switch (target)
        {
            case Namespace ns: return new Namespace(ns.Path + "." + name);
            case ModuleRef m: return ModuleAttr(m.Module, name);
            case Sym s: throw Unsupported($"attribute '{name}' of a tensor value");
            default: throw Unsupported($"attribute '{name}' of {ScalarOps.TypeOf(target)}");
        }
    }

    private object? ModuleAttr(TorchModule m, string name)
    {
        var child = m.Children.FirstOrDefault(c => c.Name == name);
        if (child is not null) return new ModuleRef(child);
        if (m.Attributes.TryGetValue(name, out var v)) return Wrap(v);
        if (name == "_packed_params" && m.Attributes.TryGetValue("weight", out var w) && w is QTensor wq && m.Attributes.ContainsKey("stride"))
            return ConvParamsFromState(m, wq);
        // class constants (Final)
        var (file, cls) = ClassOf(m);
        if (cls.Constants.TryGetValue(name, out var ce))
        {
            _stack.Push(new Frame { File = file, Self = m, ModulePath = m.Path, Line = ce.Line });
            try { return Eval(ce); } finally { _stack.Pop(); }
        }
        if (cls.Methods.ContainsKey(name)) return new BoundMethod(m, name);
        throw Unsupported($"module '{m.Path}' ({m.Kind}) has no attribute '{name}'");
    }

    private ConvPackedParams ConvParamsFromState(TorchModule m, QTensor weight)
    {
        long[] Ints(string key)
        {
            var v = m.Attributes[key];
            return v switch
            {
                object?[] t => t.Select(x => ScalarOps.ToLong(x, key)).ToArray(),
                List<object?> l => l.Select(x => ScalarOps.ToLong(x, key)).ToArray(),
                long l1 => [l1],
                _ => throw Unsupported($"conv attribute {key} of '{m.Path}' is {ScalarOps.TypeOf(v)}"),
            };
        }
        int k = weight.Shape.Length - 2;
        bool zeros = !m.Attributes.TryGetValue("padding_mode", out var pm) || pm is "zeros" or null;
        return new ConvPackedParams
        {
            Version = 3, SpatialDims = k, Weight = weight, Bias = m.Attributes.TryGetValue("bias", out var b) ? b as Tensor : null,
            Stride = Ints("stride"), Padding = zeros ? Ints("padding") : new long[k], Dilation = Ints("dilation"),
            OutputPadding = m.Attributes.ContainsKey("output_padding") ? Ints("output_padding") : new long[k],
            Groups = m.Attributes.TryGetValue("groups", out var g) && g is long gl ? gl : 1,
            Transpose = m.Attributes.TryGetValue("transposed", out var tr) && tr is true,
        };
    }

    private static object? Wrap(object? v) => v switch
    {
        DType d => ScalarOps.ScalarTypeCode(d),
        object?[] t => t.Select(Wrap).ToArray(),
        List<object?> l => l.Select(Wrap).ToList(),
        _ => v,
    };

    private object? EvalCall(CallExpr call)
    {
        var func = Eval(call.Func);
        var args = call.Args.Select(Eval).ToList();
        var kwargs = call.Kwargs.Select(k => (k.Name, Eval(k.Value))).ToList();
        switch (func)
        {
            case BoundMethod bm: return CallModuleMethod(bm.Module, bm.Name, args, kwargs);
            case Namespace ns: return CallNamespace(ns.Path, args, kwargs);
            case ModuleRef mr: return CallModuleMethod(mr.Module, "forward", args, kwargs);
            default: throw Unsupported($"calling {ScalarOps.TypeOf(func)}");
        }
    }

    private object? CallNamespace(string path, List<object?> args, List<(string Name, object?)> kwargs)
    {
        if (path.StartsWith("__local__.", StringComparison.Ordinal))
        {
            var fr = _stack.Peek();
            var f = fr.File.Functions[path["__local__.".Length..]];
            return Invoke(fr.File, f, null, args, kwargs, null);
        }
        if (path.StartsWith("__torch__.", StringComparison.Ordinal)) return CallFunction(path, args, kwargs);
        switch (path)
        {
            case "annotate": case "unchecked_cast": return args.Count == 2 ? args[1] : throw Unsupported($"{path} needs 2 arguments");
            case "uninitialized": return Undefined.Value;
            case "float": return Scalar("aten::Float", args);
            case "int": return Scalar("aten::Int", args);
            case "bool": return Scalar("aten::Bool", args);
            case "len": case "torch.len": return Scalar("aten::len", args);
            case "min": return Scalar("prim::min", args);
            case "max": return Scalar("prim::max", args);
            case "list": return args.Count == 1 && args[0] is List<object?> or object?[] ? ((IEnumerable<object?>)args[0]!).ToList() : throw Unsupported("list()");
            case "range":
            {
                if (args.Any(a => a is Sym)) throw Unsupported("range over a run-time value");
                long start = 0, stop, step = 1;
                if (args.Count == 1) stop = ScalarOps.ToLong(args[0], "range");
                else { start = ScalarOps.ToLong(args[0], "range"); stop = ScalarOps.ToLong(args[1], "range"); if (args.Count > 2) step = ScalarOps.ToLong(args[2], "range"); }
                if (step == 0) throw Unsupported("range step 0");
                var l = new List<object?>();
                for (long i = start; step > 0 ? i < stop : i > stop; i += step)
                {
                    l.Add(i);
                    if (l.Count > 100_000) throw Unsupported("range longer than 100000");
                }
                return l;
            }
            case "getattr":
                if (args.Count >= 2 && args[0] is ModuleRef m && args[1] is string attr) return ModuleAttr(m.Module, attr);
                throw Unsupported("getattr on something other than a module");
            case "isinstance": throw Unsupported("isinstance");
            case "ops.prim.RaiseException":
                throw new ModelRaised($"the model raises {(args.Count > 1 ? args[1] : "an exception")} '{(args.Count > 0 ? args[0] : "")}' unconditionally at {Here()}");
            case "torch.append":
                if (args[0] is List<object?> la) { la.Add(args[1]); return null; }
                throw Unsupported("append to a non-list");
            case "torch.extend":
                if (args[0] is List<object?> le && args[1] is IEnumerable<object?> src) { le.AddRange(src.ToList()); return null; }
                throw Unsupported("extend of a non-list");
            case "torch.__is__": return Scalar("aten::__is__", args);
            case "torch.__isnot__": return Scalar("aten::__isnot__", args);
            case "torch.__not__": return Scalar("aten::__not__", args);
        }
        string op;
        if (path.StartsWith("torch.ops.", StringComparison.Ordinal)) path = path["torch.".Length..];
        if (path.StartsWith("ops.", StringComparison.Ordinal))
        {
            var rest = path["ops.".Length..];
            int d = rest.IndexOf('.');
            op = d < 0 ? rest : rest[..d] + "::" + rest[(d + 1)..];
        }
        else if (path.StartsWith("torch.", StringComparison.Ordinal)) op = "aten::" + path["torch.".Length..];
        else throw Unsupported($"call to {path}");
        if (ScalarOps.Names.Contains(op) && !(op is "aten::add" or "aten::mul" or "aten::sub" && args.Any(IsTensorLike)))
            return Scalar(op, args);
        if (kwargs.Count > 0) throw Unsupported($"keyword arguments ({string.Join(", ", kwargs.Select(k => k.Name))}) to {op}");
        if (!OpRegistry.IsTensorOp(op)) throw Unsupported($"operator {op} (torch call {path}) is not supported");
        return EmitOp(op, args);
    }

    private static bool IsTensorLike(object? v) => v is Sym or Tensor or QTensor;

    // ------------------------------------------------------------------ node emission

    private string NewName(string hint) => $"{hint}.{_counter++}";

    private object? Scalar(string op, List<object?> args)
    {
        if (!args.Any(ContainsSym))
        {
            try
            {
                return ScalarOps.Eval(op, args);
            }
            catch (QuantToolsException e)
            {
                throw Unsupported(e.Message);
            }
        }
        var name = NewName(op[(op.IndexOf(':') + 2)..].Trim('_'));
        Emit(op, args.Select(ToOperand).ToList(), [name]);
        return new Sym(name);
    }

    private object? EmitOp(string op, List<object?> args)
    {
        var name = NewName(op[(op.IndexOf(':') + 2)..]);
        var ops = args.Select(ToOperand).ToList();
        var node = Emit(op, ops, [name]);
        SetOutputQParams(node);
        return new Sym(name);
    }

    private static bool ContainsSym(object? v) => v switch
    {
        Sym => true,
        List<object?> l => l.Any(ContainsSym),
        object?[] t => t.Any(ContainsSym),
        _ => false,
    };

    private Operand ToOperand(object? v)
    {
        switch (v)
        {
            case Sym s: return Operand.Of(s.Name);
            case List<object?> l when l.Any(ContainsSym):
            {
                var name = NewName("list");
                Emit("prim::ListConstruct", l.Select(ToOperand).ToList(), [name]);
                return Operand.Of(name);
            }
            case object?[] t when t.Any(ContainsSym):
            {
                var name = NewName("tuple");
                Emit("prim::TupleConstruct", t.Select(ToOperand).ToList(), [name]);
                return Operand.Of(name);
            }
            case ModuleRef or BoundMethod or Namespace or TypeValue:
                throw Unsupported($"passing {v.GetType().Name} to an operator");
            case Undefined: throw Unsupported("an uninitialized value passed to an operator");
            default: return Operand.Const(v);
        }
    }

    private GraphNode Emit(string op, List<Operand> inputs, List<string> outputs)
    {
        var fr = _stack.Count > 0 ? _stack.Peek() : null;
        var node = new GraphNode
        {
            Index = _nodes.Count, Op = op, Inputs = inputs, Outputs = outputs, ModulePath = fr?.ModulePath ?? "",
            ModuleKind = fr?.Self?.Kind, Source = Here(),
        };
        _nodes.Add(node);
        return node;
    }

    private static void SetOutputQParams(GraphNode n)
    {
        int si = OpRegistry.OutputQParamsArg(n.Op);
        if (si < 0 || n.Inputs.Count <= si + 1) return;
        var s = n.Inputs[si];
        var z = n.Inputs[si + 1];
        if (!s.IsValue && !z.IsValue)
        {
            try
            {
                n.OutputScale = ScalarOps.ToDouble(s.Constant, n.Op);
                n.OutputZeroPoint = (long)ScalarOps.ToDouble(z.Constant, n.Op);
            }
            catch (QuantToolsException)
            {
                // leave unknown
            }
        }
    }
}
