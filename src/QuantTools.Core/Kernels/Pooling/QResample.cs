using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Pooling;

/// <summary>
/// Quantized resampling and reshaping of NCHW tensors (numerics.md 5.5), the same on every engine: upsample nearest and
/// bilinear (PT: UpsampleNearest2d.cpp, UpsampleBilinear2d.cpp), flatten, channel_shuffle. Output qparams = input's.
/// </summary>
public static class QResample
{
    /// <summary>
    /// <c>upsample_nearest2d</c>: <c>src = dst</c> when sizes match, <c>dst &gt;&gt; 1</c> when the output is twice the input,
    /// else <c>min(floor(f32(dst * scale)), in - 1)</c> with <c>scale = f32(1/scale_factor)</c> or <c>f32(in/out)</c>.
    /// </summary>
    public static QTensor UpsampleNearest2d(QTensor x, int outH, int outW, double? scaleH = null, double? scaleW = null)
    {
        QOps.RequirePerTensor(x, "upsample_nearest2d");
        QOps.RequireRank(x, 4, "upsample_nearest2d");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        if (outH <= 0 || outW <= 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "upsample: output size must be positive");
        var y = QOps.NewLike(x, [n, c, outH, outW], out var dst);
        var src = QOps.Bytes(x);
        Span<int> colIdx = outW <= 4096 ? stackalloc int[outW] : new int[outW];
        for (int ox = 0; ox < outW; ox++) colIdx[ox] = NearestIndex(ox, w, outW, scaleW);
        for (int p = 0; p < n * c; p++)
            for (int oy = 0; oy < outH; oy++)
            {
                int iy = NearestIndex(oy, h, outH, scaleH);
                var srow = src.Slice((p * h + iy) * w, w);
                var drow = dst.Slice((p * outH + oy) * outW, outW);
                for (int ox = 0; ox < outW; ox++) drow[ox] = srow[colIdx[ox]];
            }
        return y;
    }

    public static int NearestIndex(int o, int input, int output, double? scale)
    {
        if (output == input) return o;
        if (output == 2 * input) return o >> 1;
        float s = scale is > 0 ? (float)(1.0 / scale.Value) : (float)input / output;
        return Math.Min((int)MathF.Floor(o * s), input - 1);
    }

    /// <summary>
    /// <c>upsample_bilinear2d</c> on an NCHW input (<c>upsample_bilinear2d_out_frame</c>): source index
    /// <c>align_corners ? r*d : max(r*(d+0.5)-0.5, 0)</c> with <c>r</c> = <c>area_pixel_compute_scale&lt;float&gt;</c>;
    /// <c>v = h0*(w0*p00 + w1*p01) + h1*(w0*p10 + w1*p11) - zp_in</c> in float, then <c>quantize_val(s_out/s_in, zp_out, v)</c>.
    /// </summary>
    public static QTensor UpsampleBilinear2d(QTensor x, int outH, int outW, bool alignCorners, double? scaleH = null, double? scaleW = null)
    {
        QOps.RequirePerTensor(x, "upsample_bilinear2d");
        QOps.RequireRank(x, 4, "upsample_bilinear2d");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        if (outH <= 0 || outW <= 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "upsample: output size must be positive");
        var y = QOps.NewLike(x, [n, c, outH, outW], out var dst);
        var src = QOps.Bytes(x);
        bool signed = QOps.IsSigned(x.DType);
        if (h == outH && w == outW) { src.CopyTo(dst); return y; }
        var (qmin, qmax) = QOps.Range(x.DType);
        float rh = AreaPixelScale(h, outH, alignCorners, scaleH), rw = AreaPixelScale(w, outW, alignCorners, scaleW);
        float outScale = (float)(x.QParams.Scale / x.QParams.Scale);
        float inv = 1.0f / outScale;
        int zpIn = (int)x.QParams.ZeroPoint, zpOut = zpIn;
        for (int p = 0; p < n * c; p++)
            for (int oy = 0; oy < outH; oy++)
            {
                float h1r = SourceIndex(rh, oy, alignCorners);
                int h1 = (int)h1r;
                int h1p = h1 < h - 1 ? 1 : 0;
                float h1l = h1r - h1, h0l = 1f - h1l;
                for (int ox = 0; ox < outW; ox++)
                {
                    float w1r = SourceIndex(rw, ox, alignCorners);
                    int w1 = (int)w1r;
                    int w1p = w1 < w - 1 ? 1 : 0;
                    float w1l = w1r - w1, w0l = 1f - w1l;
                    int b = (p * h + h1) * w + w1;
                    float p00 = QOps.Get(src, b, signed), p01 = QOps.Get(src, b + w1p, signed);
                    float p10 = QOps.Get(src, b + h1p * w, signed), p11 = QOps.Get(src, b + h1p * w + w1p, signed);
                    float v = h0l * (w0l * p00 + w1l * p01) + h1l * (w0l * p10 + w1l * p11) - zpIn;
                    dst[(p * outH + oy) * outW + ox] = (byte)QOps.QuantizeScalar(v, inv, zpOut, qmin, qmax);
                }
            }
        return y;
    }

    /// <summary>ATen <c>area_pixel_compute_scale&lt;float&gt;</c>.</summary>
    public static float AreaPixelScale(int input, int output, bool alignCorners, double? scale)
    {
        if (alignCorners) return output > 1 ? (float)(input - 1) / (output - 1) : 0f;
        return scale is > 0 ? (float)(1.0 / scale.Value) : (float)input / output;
    }

    /// <summary>ATen <c>area_pixel_compute_source_index&lt;float&gt;</c> (not cubic).</summary>
    public static float SourceIndex(float scale, int dst, bool alignCorners)
    {
        if (alignCorners) return scale * dst;
        float s = scale * (dst + 0.5f) - 0.5f;
        return s < 0f ? 0f : s;
    }

    /// <summary><c>torch.flatten(x, startDim)</c>: the same integers and qparams, new shape.</summary>
    public static QTensor Flatten(QTensor x, int startDim = 1, int endDim = -1)
    {
        int rank = x.Shape.Length;
        if (rank == 0) return new QTensor(x.IntRepr.Reshape(1), x.QParams);
        if (startDim < 0) startDim += rank;
        if (endDim < 0) endDim += rank;
        if (startDim < 0 || endDim >= rank || startDim > endDim)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"flatten: dims {startDim}..{endDim} are out of range for rank {rank}");
        var shape = new List<int>();
        for (int d = 0; d < startDim; d++) shape.Add(x.Shape[d]);
        int m = 1;
        for (int d = startDim; d <= endDim; d++) m *= x.Shape[d];
        shape.Add(m);
        for (int d = endDim + 1; d < rank; d++) shape.Add(x.Shape[d]);
        var data = (Array)x.IntRepr.Data.Clone();
        return new QTensor(new Tensor(x.IntRepr.DType, shape.ToArray(), data), x.QParams);
    }

    /// <summary>
    /// <c>channel_shuffle(x, groups)</c>: output channel <c>j*g + i</c> is input channel <c>i*(C/g) + j</c>. PyTorch's quantized
    /// kernel accepts quint8 only (PT: ChannelShuffle.cpp), on every engine.
    /// </summary>
    public static QTensor ChannelShuffle(QTensor x, int groups)
    {
        QOps.RequirePerTensor(x, "channel_shuffle");
        if (x.DType != DType.QUInt8)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"Quantized channel shuffle works only on QUInt8 but got {x.DType.TorchName()}");
        if (x.Shape.Length < 3) throw new QuantToolsException(ErrorCode.ShapeMismatch, "channel_shuffle expects at least a 3-d input");
        int n = x.Shape[0], c = x.Shape[1];
        if (groups <= 0 || c % groups != 0)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"channel_shuffle: {c} channels are not divisible by {groups} groups");
        int inner = 1;
        for (int d = 2; d < x.Shape.Length; d++) inner *= x.Shape[d];
        var y = QOps.NewLike(x, x.Shape, out var dst);
        var src = QOps.Bytes(x);
        int per = c / groups;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < groups; i++)
                for (int j = 0; j < per; j++)
                    src.Slice((b * c + i * per + j) * inner, inner).CopyTo(dst.Slice((b * c + j * groups + i) * inner, inner));
        return y;
    }
}
