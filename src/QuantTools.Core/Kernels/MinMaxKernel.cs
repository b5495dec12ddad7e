namespace QuantTools.Core.Kernels;

/// <summary>
/// torch.aminmax over a float32 span: NaN propagates to both results. Empty input returns (+inf, -inf).
/// (Scalar reference; SIMD paths are registered in KernelPaths.)
/// </summary>
public static class MinMaxKernel
{
    public static (float Min, float Max) Reference(ReadOnlySpan<float> x)
    {
        float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
        foreach (var v in x)
        {
            if (float.IsNaN(v)) return (float.NaN, float.NaN);
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        return (mn, mx);
    }

    public static (float Min, float Max) Compute(ReadOnlySpan<float> x) => Reference(x);
}
