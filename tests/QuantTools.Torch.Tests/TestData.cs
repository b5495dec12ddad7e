using QuantTools.Core.Tensors;

namespace QuantTools.Torch.Tests;

/// <summary>Deterministic random inputs for the cross-checks.</summary>
internal sealed class TestData(int seed)
{
    private readonly Random _rng = new(seed);

    public Random Rng => _rng;

    public static readonly float[] Specials =
    [
        0f, -0f, float.NaN, -float.NaN, BitConverter.Int32BitsToSingle(0x7fc12345), BitConverter.Int32BitsToSingle(unchecked((int)0xff812345)),
        float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, -float.MaxValue, float.Epsilon, -float.Epsilon,
        1e-38f, -1e-38f, 1e30f, -1e30f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 1f, -1f,
    ];

    /// <summary>Log-uniform in [1e-6, 1e3]; one time in ten a power of two (exact reciprocals make exact ties).</summary>
    public double Scale()
    {
        if (_rng.Next(10) == 0) return Math.ScaleB(1.0, _rng.Next(-19, 10));
        return Math.Exp(Math.Log(1e-6) + _rng.NextDouble() * (Math.Log(1e3) - Math.Log(1e-6)));
    }

    public double Normal() =>
        Math.Sqrt(-2.0 * Math.Log(1.0 - _rng.NextDouble())) * Math.Cos(2.0 * Math.PI * _rng.NextDouble());

    public int Length()
    {
        int k = _rng.Next(20);
        return k == 0 ? _rng.Next(0, 4) : k == 1 ? _rng.Next(60, 70) : _rng.Next(0, 301);
    }

    public long Int32ZeroPoint() => _rng.Next(8) switch
    {
        0 => 0,
        1 => int.MaxValue - _rng.Next(0, 300),
        2 => int.MinValue + _rng.Next(0, 300),
        3 => _rng.Next(-300, 300),
        _ => _rng.Next(int.MinValue, int.MaxValue),
    };

    /// <summary>
    /// Values for a tensor quantized with scale <paramref name="scale"/> and zero point <paramref name="zp"/>:
    /// normal, uniform over (and past) the quantized range, random bit patterns (NaN and infinities included),
    /// exact and near ties, values around the 2^31 conversion limit, each sometimes sprinkled with specials.
    /// </summary>
    public float[] Values(int n, double scale, long zp, DType dtype, out string kind)
    {
        var (qmin, qmax) = dtype.QuantRange();
        if (dtype == DType.QInt32) { qmin = -3_000_000_000L; qmax = 3_000_000_000L; }
        float sf = (float)scale;
        double inv = GoldenFormula.Inverse(scale);
        var x = new float[n];
        int k = _rng.Next(7);
        kind = k switch { 0 => "normal", 1 => "uniform", 2 => "bits", 3 => "ties", 4 => "near-2^31", 5 => "wide-normal", _ => "int-grid" };
        for (int i = 0; i < n; i++)
        {
            switch (k)
            {
                case 0:
                    x[i] = (float)(Normal() * sf * Math.Pow(10, _rng.NextDouble() * 3 - 0.5));
                    break;
                case 1:
                {
                    double lo = (qmin - zp - 20) * (double)sf, hi = (qmax - zp + 20) * (double)sf;
                    x[i] = (float)(lo + _rng.NextDouble() * (hi - lo));
                    break;
                }
                case 2:
                    x[i] = BitConverter.Int32BitsToSingle(_rng.Next() ^ (_rng.Next(2) << 31));
                    break;
                case 3:
                {
                    // t = x * inv lands on or next to k + 0.5 (exactly on it when the scale is a power of two).
                    double t = _rng.Next((int)Math.Max(qmin - zp - 10, -1_000_000), (int)Math.Min(qmax - zp + 10, 1_000_000)) + 0.5;
                    float v = (float)(t / inv);
                    int nudge = _rng.Next(5) - 2;
                    x[i] = nudge == 0 ? v : BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(v) + nudge);
                    break;
                }
                case 4:
                {
                    double t = (_rng.Next(2) == 0 ? 1 : -1) * (2147483648.0 + (_rng.Next(-600, 600) * 128.0));
                    float v = (float)(t / inv);
                    x[i] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(v) + _rng.Next(-3, 4));
                    break;
                }
                case 5:
                    x[i] = (float)(Normal() * Math.Pow(10, _rng.NextDouble() * 60 - 30));
                    break;
                default:
                    x[i] = (float)((_rng.Next((int)Math.Max(qmin - zp - 5, -100_000), (int)Math.Min(qmax - zp + 6, 100_000))) / inv);
                    break;
            }
        }
        if (n > 0 && _rng.Next(3) == 0)
            for (int j = 0, m = 1 + _rng.Next(Math.Min(n, 8)); j < m; j++)
                x[_rng.Next(n)] = Specials[_rng.Next(Specials.Length)];
        return x;
    }
}
