using System.Runtime.CompilerServices;

namespace QuantTools.Core.Kernels.Elementwise;

/// <summary>
/// Float math as PyTorch's AVX-512 <c>Vectorized&lt;float&gt;</c> computes it (Sleef, FMA build), written from the
/// published algorithm (Cody-Waite reduction by ln 2 split in two constants, degree-6 polynomial evaluated with FMA,
/// scaling by 2^q in two halves). Scalar lambdas use the C library (.NET's MathF on Linux calls glibc's expf/tanhf).
/// </summary>
public static class SleefMath
{
    private const float RLn2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
    private const float L2U = 0.693145751953125f;
    private const float L2L = 1.428606765330187045e-06f;

    /// <summary>Sleef_expf16_u10 (1.0-ulp exp) as one lane computes it.</summary>
    public static float Expf(float d)
    {
        int q = (int)MathF.Round(d * RLn2);          // vrint_vi2_vf: cvtps2dq, round half to even
        float s = MathF.FusedMultiplyAdd(q, -L2U, d);
        s = MathF.FusedMultiplyAdd(q, -L2L, s);

        float u = 0.000198527617612853646278381f;
        u = MathF.FusedMultiplyAdd(u, s, 0.00139304355252534151077271f);
        u = MathF.FusedMultiplyAdd(u, s, 0.00833336077630519866943359f);
        u = MathF.FusedMultiplyAdd(u, s, 0.0416664853692054748535156f);
        u = MathF.FusedMultiplyAdd(u, s, 0.166666671633720397949219f);
        u = MathF.FusedMultiplyAdd(u, s, 0.5f);
        u = 1.0f + MathF.FusedMultiplyAdd(s * s, u, s);

        u = Ldexp2(u, q);
        if (d < -104f) u = 0f;
        if (d > 100f) u = float.PositiveInfinity;
        return u;
    }

    /// <summary><c>vldexp2</c>: <c>d * 2^(q>>1) * 2^(q - (q>>1))</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Ldexp2(float d, int q) => d * Pow2i(q >> 1) * Pow2i(q - (q >> 1));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Pow2i(int q) => BitConverter.Int32BitsToSingle(unchecked((q + 0x7f) << 23));
}
