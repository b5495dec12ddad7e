namespace QuantTools.Core.Tests.Kernels;

/// <summary>Deterministic float inputs full of quantization edge cases.</summary>
internal static class KernelInputs
{
    public static readonly double[] Scales =
        [1e-6, 2.5e-5, 1.0 / 255.0, 0.019743409007787704, 0.1, 0.13664968311786652, 1.0 / 3.0, 0.25, 1.0, 7.0, 10.0395, 1e3];

    public static readonly float[] Specials =
    [
        0f, -0f, 1e30f, -1e30f, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
        BitConverter.Int32BitsToSingle(unchecked((int)0xFFC12345)), // negative NaN with payload
        1e-30f, -1e-30f, 3.4e38f, -3.4e38f, float.MaxValue, float.MinValue, float.Epsilon, -float.Epsilon,
        1.17549421e-38f /* largest denormal */, -1.17549421e-38f, 1.17549435e-38f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f,
    ];

    /// <summary>Values whose product with the scale's reciprocal lands on or next to ties, integers, the int32 edges and the cap.</summary>
    public static float[] ForScale(double scale, int count, int seed)
    {
        float sf = (float)scale;
        var rng = new Random(seed);
        var pool = new List<float>(Specials);
        foreach (var k in new double[] { 0.5, 1.5, 2.5, -0.5, -1.5, 127.5, 128.5, -128.5, 255.5, 256.5, -255.5,
                     8388607.5, 16777217, 2147483520, 2147483647, 2147483648, 4294967296, -2147483648, -2147483904, -4294967296 })
        {
            float v = (float)(k * sf);
            pool.Add(v); pool.Add(MathF.BitIncrement(v)); pool.Add(MathF.BitDecrement(v));
        }
        var r = new float[count];
        for (int i = 0; i < count; i++)
        {
            int kind = rng.Next(4);
            r[i] = kind switch
            {
                0 => pool[rng.Next(pool.Count)],
                1 => (float)((rng.Next(-700, 700) + 0.5) * sf),                       // exact-ish ties
                2 => (float)(NextGaussian(rng) * 100 * sf),                             // typical data
                _ => BitConverter.Int32BitsToSingle(rng.Next() ^ (rng.Next(2) << 31)), // any bit pattern
            };
        }
        return r;
    }

    public static double NextGaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    public static string F(float v) =>
        $"{v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} (0x{BitConverter.SingleToInt32Bits(v):X8})";
}
