namespace QuantTools.Core.Models;

/// <summary>
/// The fixed-point form of a real multiplier that integer-only kernels (gemmlowp, TFLite, CMSIS-NN, TVM's
/// requantize) use: <c>M = m · 2^(−31) · 2^(−shift)</c> with an int32 <c>m</c> in [2^30, 2^31) and a right shift.
/// Same rounding as TFLite's QuantizeMultiplier: frexp, then round half away from zero of <c>q · 2^31</c>.
/// </summary>
public static class FixedPointMultiplier
{
    /// <summary>(multiplier, right shift); a negative right shift is a left shift (M ≥ 1). M = 0 gives (0, 0).</summary>
    public static (int Multiplier, int RightShift) From(double m)
    {
        if (double.IsNaN(m) || double.IsInfinity(m) || m < 0)
            throw new QuantToolsException(ErrorCode.InvalidQParams, $"a requantization multiplier must be finite and >= 0, got {m}");
        if (m == 0) return (0, 0);
        int exponent = Math.ILogB(m) + 1;           // m = q · 2^exponent with q in [0.5, 1)
        double q = Math.ScaleB(m, -exponent);
        long qFixed = (long)Math.Round(q * (1L << 31), MidpointRounding.AwayFromZero);
        if (qFixed == 1L << 31)
        {
            qFixed /= 2;
            exponent++;
        }
        if (exponent < -31) return (0, 0);            // underflows to zero, as TFLite does
        return ((int)qFixed, -exponent);
    }

    /// <summary>The real value a (multiplier, right shift) pair stands for.</summary>
    public static double ToDouble(int multiplier, int rightShift) => Math.ScaleB(multiplier, -31 - rightShift);
}
