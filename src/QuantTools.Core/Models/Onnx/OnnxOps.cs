using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Onnx;

/// <summary>ONNX data-movement ops (shapes only; values are copied or shared unchanged).</summary>
internal static class OnnxShapeOps
{
    private static long[] IntsInput(Dictionary<string, Tensor> v, OrtNode n, int i)
    {
        var name = n.Input(i);
        if (name.Length == 0 || !v.TryGetValue(name, out var t)) return [];
        if (t.DType is not (DType.Int64 or DType.Int32))
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"input {i} must be int64, got {t.DType.TorchName()}", n.Name);
        return Enumerable.Range(0, t.Length).Select(k => (long)t.GetDouble(k)).ToArray();
    }

    private static int Axis(long a, int rank, OrtNode n)
    {
        long r = a < 0 ? a + rank : a;
        if (r < 0 || r >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, $"axis {a} is outside rank {rank}", n.Name);
        return (int)r;
    }

    public static int[] OutputShape(OrtNode n, int[] x, Dictionary<string, Tensor> v)
    {
        int total = (int)Tensor.CheckedNumel(x);
        switch (n.Op)
        {
            case "Identity" or "Dropout": return x;
            case "Flatten":
            {
                long a = n.Int("axis", 1);
                int axis = (int)(a < 0 ? a + x.Length : a);
                if (axis < 0 || axis > x.Length) throw new QuantToolsException(ErrorCode.InvalidArgument, $"Flatten axis {a} is outside rank {x.Length}", n.Name);
                int outer = x.Take(axis).Aggregate(1, (p, d) => p * d);
                return [outer, outer == 0 ? 0 : total / outer];
            }
            case "Reshape":
            {
                var spec = IntsInput(v, n, 1);
                bool allowZero = n.Int("allowzero", 0) != 0;
                var shape = new int[spec.Length];
                int infer = -1;
                long known = 1;
                for (int i = 0; i < spec.Length; i++)
                {
                    long d = spec[i];
                    if (d == -1)
                    {
                        if (infer >= 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "Reshape has two -1 dimensions", n.Name);
                        infer = i;
                        continue;
                    }
                    if (d == 0 && !allowZero)
                    {
                        if (i >= x.Length) throw new QuantToolsException(ErrorCode.InvalidArgument, $"Reshape copies dimension {i} the input lacks", n.Name);
                        d = x[i];
                    }
                    if (d < 0 || d > int.MaxValue) throw new QuantToolsException(ErrorCode.InvalidArgument, $"Reshape dimension {d}", n.Name);
                    shape[i] = (int)d;
                    known *= d;
                }
                if (infer >= 0)
                {
                    if (known == 0 || total % known != 0)
                        throw new QuantToolsException(ErrorCode.ShapeMismatch, $"cannot reshape {total} elements to [{string.Join(", ", spec)}]", n.Name);
                    shape[infer] = (int)(total / known);
                }
                if (Tensor.CheckedNumel(shape) != total)
                    throw new QuantToolsException(ErrorCode.ShapeMismatch, $"cannot reshape [{string.Join(", ", x)}] to [{string.Join(", ", spec)}]", n.Name);
                return shape;
            }
            case "Squeeze":
            {
                var axes = n.Ints("axes") ?? IntsInput(v, n, 1);
                var drop = axes.Length == 0
                    ? Enumerable.Range(0, x.Length).Where(i => x[i] == 1).ToHashSet()
                    : axes.Select(a => Axis(a, x.Length, n)).ToHashSet();
                foreach (var d in drop)
                    if (x[d] != 1) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"Squeeze of dimension {d} of size {x[d]}", n.Name);
                return x.Where((_, i) => !drop.Contains(i)).ToArray();
            }
            case "Unsqueeze":
            {
                var axes = n.Ints("axes") ?? IntsInput(v, n, 1);
                int rank = x.Length + axes.Length;
                var at = axes.Select(a => Axis(a, rank, n)).ToHashSet();
                if (at.Count != axes.Length) throw new QuantToolsException(ErrorCode.InvalidArgument, "Unsqueeze repeats an axis", n.Name);
                var r = new int[rank];
                for (int i = 0, j = 0; i < rank; i++) r[i] = at.Contains(i) ? 1 : x[j++];
                return r;
            }
            default: throw new QuantToolsException(ErrorCode.UnsupportedOperator, n.Op, n.Name);
        }
    }

    public static Tensor Transpose(Tensor x, OrtNode n)
    {
        int rank = x.Rank;
        var perm = n.Ints("perm")?.Select(p => (int)p).ToArray() ?? Enumerable.Range(0, rank).Reverse().ToArray();
        if (perm.Length != rank || perm.Distinct().Count() != rank || perm.Any(p => p < 0 || p >= rank))
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"perm [{string.Join(", ", perm)}] for rank {rank}", n.Name);
        var outShape = perm.Select(p => x.Shape[p]).ToArray();
        var inStride = new int[rank];
        for (int i = rank - 1, s = 1; i >= 0; i--) { inStride[i] = s; s *= x.Shape[i]; }
        var y = Array.CreateInstance(x.Data.GetType().GetElementType()!, x.Length);
        var idx = new int[rank];
        for (int o = 0; o < x.Length; o++)
        {
            int src = 0;
            for (int d = 0; d < rank; d++) src += idx[d] * inStride[perm[d]];
            Array.Copy(x.Data, src, y, o, 1);
            for (int d = rank - 1; d >= 0; d--)
            {
                if (++idx[d] < outShape[d]) break;
                idx[d] = 0;
            }
        }
        return new Tensor(x.DType, outShape, y);
    }

    public static Tensor Concat(IReadOnlyList<Tensor> parts, int axisAttr, string node)
    {
        if (parts.Count == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "Concat of nothing", node);
        var first = parts[0];
        int rank = first.Rank, axis = axisAttr < 0 ? axisAttr + rank : axisAttr;
        if (axis < 0 || axis >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, $"Concat axis {axisAttr} is outside rank {rank}", node);
        foreach (var p in parts)
            if (p.DType != first.DType || p.Rank != rank || Enumerable.Range(0, rank).Any(d => d != axis && p.Shape[d] != first.Shape[d]))
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"Concat inputs [{string.Join("; ", parts.Select(q => string.Join(",", q.Shape)))}] do not fit", node);
        var shape = (int[])first.Shape.Clone();
        shape[axis] = parts.Sum(p => p.Shape[axis]);
        int outer = first.Shape.Take(axis).Aggregate(1, (a, b) => a * b);
        int inner = first.Shape.Skip(axis + 1).Aggregate(1, (a, b) => a * b);
        var y = Array.CreateInstance(first.Data.GetType().GetElementType()!, (int)Tensor.CheckedNumel(shape));
        int at = 0;
        for (int o = 0; o < outer; o++)
            foreach (var p in parts)
            {
                int len = p.Shape[axis] * inner;
                Array.Copy(p.Data, o * len, y, at, len);
                at += len;
            }
        return new Tensor(first.DType, shape, y);
    }
}

/// <summary>
/// ONNX float ops in plain float32. Elementwise ops and max-pooling are exact; conv, GEMM, MatMul and average pooling sum
/// in order and are not bit-exact with MLAS's blocked, FMA-contracted float kernels (the executor says so).
/// </summary>
internal static class OnnxFloatOps
{
    private static ReadOnlySpan<float> F(Tensor t, OrtNode n) => t.DType == DType.Float32 ? t.AsSpan<float>()
        : throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{n.Op} needs float32 input, got {t.DType.TorchName()}", n.Name);

    public static Tensor Map(Tensor x, OrtNode n, Func<float, float> f)
    {
        var xs = F(x, n);
        var y = new float[xs.Length];
        for (int i = 0; i < y.Length; i++) y[i] = f(xs[i]);
        return new Tensor(DType.Float32, x.Shape, y);
    }

    /// <summary>Numpy broadcasting of two shapes.</summary>
    public static int[] Broadcast(int[] a, int[] b, OrtNode n)
    {
        int r = Math.Max(a.Length, b.Length);
        var s = new int[r];
        for (int i = 0; i < r; i++)
        {
            int da = i - (r - a.Length) >= 0 ? a[i - (r - a.Length)] : 1;
            int db = i - (r - b.Length) >= 0 ? b[i - (r - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"shapes [{string.Join(", ", a)}] and [{string.Join(", ", b)}] do not broadcast", n.Name);
            s[i] = da == 1 ? db : da;
        }
        return s;
    }

    private static int[] Index(int[] shape, int[] outShape)
    {
        int r = outShape.Length, n = (int)Tensor.CheckedNumel(outShape);
        var map = new int[n];
        var stride = new int[r];
        for (int i = r - 1, s = 1; i >= 0; i--)
        {
            int j = i - (r - shape.Length);
            int d = j >= 0 ? shape[j] : 1;
            stride[i] = d == 1 ? 0 : s;
            s *= d;
        }
        var idx = new int[r];
        for (int o = 0; o < n; o++)
        {
            int src = 0;
            for (int d = 0; d < r; d++) src += idx[d] * stride[d];
            map[o] = src;
            for (int d = r - 1; d >= 0; d--)
            {
                if (++idx[d] < outShape[d]) break;
                idx[d] = 0;
            }
        }
        return map;
    }

    public static Tensor Binary(Tensor a, Tensor b, OrtNode n, Func<float, float, float> f)
    {
        var xa = F(a, n);
        var xb = F(b, n);
        var shape = Broadcast(a.Shape, b.Shape, n);
        var ia = Index(a.Shape, shape);
        var ib = Index(b.Shape, shape);
        var y = new float[ia.Length];
        for (int i = 0; i < y.Length; i++) y[i] = f(xa[ia[i]], xb[ib[i]]);
        return new Tensor(DType.Float32, shape, y);
    }

    /// <summary>A broadcasting binary op on uint8 / int8 tensors producing the same type.</summary>
    public static Tensor BinaryInt(Tensor a, Tensor b, OrtNode n, Func<int, int, int> f)
    {
        if (a.DType != b.DType || a.DType is not (DType.UInt8 or DType.Int8))
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{n.Op} of {a.DType.TorchName()} and {b.DType.TorchName()}", n.Name);
        var shape = Broadcast(a.Shape, b.Shape, n);
        var ia = Index(a.Shape, shape);
        var ib = Index(b.Shape, shape);
        var y = Tensor.Zeros(a.DType, shape);
        for (int i = 0; i < ia.Length; i++)
        {
            int v = f((int)a.GetDouble(ia[i]), (int)b.GetDouble(ib[i]));
            if (a.DType == DType.UInt8) y.AsSpan<byte>()[i] = (byte)v;
            else y.AsSpan<sbyte>()[i] = (sbyte)v;
        }
        return y;
    }

    /// <summary>2-d max pooling of float, uint8 or int8 input (padding never wins), with ceil_mode and dilations.</summary>
    public static Tensor MaxPool(Tensor x, OrtNode n)
    {
        if (x.Rank != 4) throw new QuantToolsException(ErrorCode.NotSupported, $"MaxPool of rank {x.Rank}: only 2-d pooling is supported", n.Name);
        var k = n.Ints("kernel_shape") ?? throw new QuantToolsException(ErrorCode.CorruptFile, "MaxPool has no kernel_shape", n.Name);
        var s = n.Ints("strides") ?? [1, 1];
        var p = n.Ints("pads") ?? [0, 0, 0, 0];
        var d = n.Ints("dilations") ?? [1, 1];
        bool ceil = n.Int("ceil_mode", 0) != 0;
        if (k.Length != 2 || s.Length != 2 || p.Length != 4 || d.Length != 2)
            throw new QuantToolsException(ErrorCode.CorruptFile, "MaxPool attributes do not describe a 2-d pool", n.Name);
        if ((n.String("auto_pad") ?? "NOTSET") is not ("NOTSET" or "" or "VALID"))
            throw new QuantToolsException(ErrorCode.NotSupported, $"MaxPool auto_pad {n.String("auto_pad")}", n.Name);
        int N = x.Shape[0], C = x.Shape[1], H = x.Shape[2], W = x.Shape[3];
        int Out(int size, int kk, int ss, int p0, int p1, int dd)
        {
            int ek = (int)((kk - 1) * dd + 1);
            double o = (double)(size + p0 + p1 - ek) / ss + 1;
            int r = ceil ? (int)Math.Ceiling(o) : (int)Math.Floor(o);
            // ceil_mode: the last window must start inside the input or the left padding
            if (ceil && (r - 1) * ss >= size + p0) r--;
            return r;
        }
        int oh = Out(H, (int)k[0], (int)s[0], (int)p[0], (int)p[2], (int)d[0]);
        int ow = Out(W, (int)k[1], (int)s[1], (int)p[1], (int)p[3], (int)d[1]);
        if (oh <= 0 || ow <= 0) throw new QuantToolsException(ErrorCode.ShapeMismatch, "MaxPool output would be empty", n.Name);
        var y = Tensor.Zeros(x.DType, N, C, oh, ow);
        for (int b = 0; b < N * C; b++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    double best = double.NegativeInfinity;
                    bool any = false;
                    for (int u = 0; u < k[0]; u++)
                    {
                        int yy = (int)(i * s[0] - p[0] + u * d[0]);
                        if (yy < 0 || yy >= H) continue;
                        for (int w = 0; w < k[1]; w++)
                        {
                            int xx = (int)(j * s[1] - p[1] + w * d[1]);
                            if (xx < 0 || xx >= W) continue;
                            double val = x.GetDouble((b * H + yy) * W + xx);
                            if (!any || val > best || double.IsNaN(val)) best = val;
                            any = true;
                        }
                    }
                    int o = (b * oh + i) * ow + j;
                    switch (x.DType)
                    {
                        case DType.Float32: y.AsSpan<float>()[o] = (float)best; break;
                        case DType.UInt8: y.AsSpan<byte>()[o] = (byte)best; break;
                        case DType.Int8: y.AsSpan<sbyte>()[o] = (sbyte)best; break;
                        default: throw new QuantToolsException(ErrorCode.UnsupportedDType, $"MaxPool of {x.DType.TorchName()}", n.Name);
                    }
                }
        return y;
    }

    public static Tensor GlobalAveragePool(Tensor x, OrtNode n)
    {
        var xs = F(x, n);
        if (x.Rank < 3) throw new QuantToolsException(ErrorCode.ShapeMismatch, "GlobalAveragePool needs rank >= 3", n.Name);
        int nc = x.Shape[0] * x.Shape[1], image = x.Length / Math.Max(1, nc);
        var shape = x.Shape.Select((d, i) => i < 2 ? d : 1).ToArray();
        var y = new float[nc];
        for (int c = 0; c < nc; c++)
        {
            float s = 0;
            for (int i = 0; i < image; i++) s += xs[c * image + i];
            y[c] = s / image;
        }
        return new Tensor(DType.Float32, shape, y);
    }

    public static Tensor Conv(Tensor x, Tensor w, Tensor? bias, OrtNode n)
    {
        var xs = F(x, n);
        var wsp = F(w, n);
        var g = OrtKernels.Geometry(n, x.Shape, w.Shape);
        int N = x.Shape[0], C = x.Shape[1], M = w.Shape[0], cg = C / g.Group, mg = M / g.Group;
        int kh = g.Spatial == 2 ? g.Kernel[0] : 1, kw = g.Kernel[^1];
        int H = g.Spatial == 2 ? g.InSize[0] : 1, W = g.InSize[^1];
        int oh = g.Spatial == 2 ? g.OutSize[0] : 1, ow = g.OutSize[^1];
        int sh = g.Spatial == 2 ? g.Strides[0] : 1, sw = g.Strides[^1];
        int ph = g.Spatial == 2 ? g.PadsBegin[0] : 0, pw = g.PadsBegin[^1];
        int dh = g.Spatial == 2 ? g.Dilations[0] : 1, dw = g.Dilations[^1];
        var b = bias is null ? null : F(bias, n).ToArray();
        var y = new float[N * M * oh * ow];
        for (int bi = 0; bi < N; bi++)
            for (int o = 0; o < M; o++)
            {
                int grp = o / mg;
                for (int yy = 0; yy < oh; yy++)
                    for (int xo = 0; xo < ow; xo++)
                    {
                        float s = 0;
                        for (int ci = 0; ci < cg; ci++)
                            for (int ky = 0; ky < kh; ky++)
                            {
                                int iy = yy * sh - ph + ky * dh;
                                if (iy < 0 || iy >= H) continue;
                                for (int kx = 0; kx < kw; kx++)
                                {
                                    int ix = xo * sw - pw + kx * dw;
                                    if (ix < 0 || ix >= W) continue;
                                    s = MathF.FusedMultiplyAdd(xs[((bi * C + grp * cg + ci) * H + iy) * W + ix], wsp[((o * cg + ci) * kh + ky) * kw + kx], s);
                                }
                            }
                        y[((bi * M + o) * oh + yy) * ow + xo] = b is null ? s : s + b[o];
                    }
            }
        return new Tensor(DType.Float32, [N, M, .. g.OutSize], y);
    }

    public static Tensor Gemm(Tensor a, Tensor b, Tensor? c, OrtNode n)
    {
        bool ta = n.Int("transA", 0) != 0, tb = n.Int("transB", 0) != 0;
        float alpha = n.Float("alpha", 1f), beta = n.Float("beta", 1f);
        if (a.Rank != 2 || b.Rank != 2) throw new QuantToolsException(ErrorCode.ShapeMismatch, "Gemm needs 2-d A and B", n.Name);
        int m = ta ? a.Shape[1] : a.Shape[0], k = ta ? a.Shape[0] : a.Shape[1];
        int kb = tb ? b.Shape[1] : b.Shape[0], nn = tb ? b.Shape[0] : b.Shape[1];
        if (k != kb) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"Gemm K {k} != {kb}", n.Name);
        var xa = F(a, n); var xb = F(b, n);
        var cs = c is null ? null : F(c, n).ToArray();
        var y = new float[m * nn];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < nn; j++)
            {
                float s = 0;
                for (int q = 0; q < k; q++) s = MathF.FusedMultiplyAdd(xa[ta ? q * m + i : i * k + q], xb[tb ? j * k + q : q * nn + j], s);
                float r = alpha * s;
                if (cs is not null) r += beta * cs[cs.Length == 1 ? 0 : cs.Length == nn ? j : cs.Length == m ? i : i * nn + j];
                y[i * nn + j] = r;
            }
        return new Tensor(DType.Float32, [m, nn], y);
    }

    public static Tensor MatMul(Tensor a, Tensor b, OrtNode n)
    {
        if (b.Rank != 2 || a.Rank < 1) throw new QuantToolsException(ErrorCode.NotSupported, "MatMul with a B of rank other than 2", n.Name);
        int k = a.Shape[^1], nn = b.Shape[1];
        if (b.Shape[0] != k) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"MatMul K {k} != {b.Shape[0]}", n.Name);
        int m = a.Length / Math.Max(1, k);
        var xa = F(a, n); var xb = F(b, n);
        var y = new float[m * nn];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < nn; j++)
            {
                float s = 0;
                for (int q = 0; q < k; q++) s = MathF.FusedMultiplyAdd(xa[i * k + q], xb[q * nn + j], s);
                y[i * nn + j] = s;
            }
        return new Tensor(DType.Float32, [.. a.Shape[..^1], nn], y);
    }
}
