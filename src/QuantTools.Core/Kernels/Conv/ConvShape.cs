namespace QuantTools.Core.Kernels.Conv;

/// <summary>
/// Geometry of a 2-d convolution (or transposed convolution) over NCHW tensors. conv1d is the 2-d case with
/// H = 1, kernel 1 x k. Transposed: weight [C_in, C_out/groups, kH, kW] and
/// <c>OH = (H − 1)·sH − 2·pH + dH·(kH − 1) + opH + 1</c>.
/// </summary>
public sealed record ConvShape(
    int InChannels, int OutChannels, int KernelH, int KernelW,
    int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW,
    int Groups, bool Transposed, int OutputPadH, int OutputPadW)
{
    public int InPerGroup => InChannels / Groups;
    public int OutPerGroup => OutChannels / Groups;
    public int Taps => KernelH * KernelW;
    /// <summary>Reduction length per output: (C_in/groups)·kH·kW.</summary>
    public int K => InPerGroup * Taps;

    public (int OH, int OW) OutputSize(int h, int w)
    {
        int oh, ow;
        if (Transposed)
        {
            oh = (h - 1) * StrideH - 2 * PadH + DilationH * (KernelH - 1) + OutputPadH + 1;
            ow = (w - 1) * StrideW - 2 * PadW + DilationW * (KernelW - 1) + OutputPadW + 1;
        }
        else
        {
            oh = (h + 2 * PadH - DilationH * (KernelH - 1) - 1) / StrideH + 1;
            ow = (w + 2 * PadW - DilationW * (KernelW - 1) - 1) / StrideW + 1;
            if (h + 2 * PadH - DilationH * (KernelH - 1) - 1 < 0 || w + 2 * PadW - DilationW * (KernelW - 1) - 1 < 0) oh = ow = 0;
        }
        if (oh <= 0 || ow <= 0)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"input {h}x{w} is too small for kernel {KernelH}x{KernelW} (dilation {DilationH}x{DilationW}, padding {PadH}x{PadW})");
        return (oh, ow);
    }

    /// <summary>
    /// The input row/column read by output (oh, ow) at tap (kh, kw), or -1 when the tap falls on padding (or, for a
    /// transposed conv, on no input at all).
    /// </summary>
    public int InputRow(int oh, int kh, int h)
    {
        if (!Transposed)
        {
            int ih = oh * StrideH - PadH + kh * DilationH;
            return (uint)ih < (uint)h ? ih : -1;
        }
        int t = oh + PadH - kh * DilationH;
        if (t < 0 || t % StrideH != 0) return -1;
        t /= StrideH;
        return t < h ? t : -1;
    }

    public int InputCol(int ow, int kw, int w)
    {
        if (!Transposed)
        {
            int iw = ow * StrideW - PadW + kw * DilationW;
            return (uint)iw < (uint)w ? iw : -1;
        }
        int t = ow + PadW - kw * DilationW;
        if (t < 0 || t % StrideW != 0) return -1;
        t /= StrideW;
        return t < w ? t : -1;
    }

    internal void Validate()
    {
        if (InChannels <= 0 || OutChannels <= 0 || KernelH <= 0 || KernelW <= 0 || StrideH <= 0 || StrideW <= 0 ||
            DilationH <= 0 || DilationW <= 0 || PadH < 0 || PadW < 0 || Groups <= 0 || OutputPadH < 0 || OutputPadW < 0)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"invalid convolution parameters {this}");
        if (InChannels % Groups != 0 || OutChannels % Groups != 0)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"channels ({InChannels} in, {OutChannels} out) must be divisible by groups ({Groups})");
        if (!Transposed && (OutputPadH != 0 || OutputPadW != 0))
            throw new QuantToolsException(ErrorCode.InvalidArgument, "output_padding is only valid for a transposed convolution");
        if (Transposed && (OutputPadH >= Math.Max(StrideH, DilationH) || OutputPadW >= Math.Max(StrideW, DilationW)))
            throw new QuantToolsException(ErrorCode.InvalidArgument, "output_padding must be smaller than either stride or dilation");
    }
}
