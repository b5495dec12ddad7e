using System.Text;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Formats;

/// <summary>Temp folder per test class, sample tensors and crafted-file helpers shared by the format tests.</summary>
public sealed class TempDir : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("qt-formats-").FullName;
    public string File(string name) => System.IO.Path.Combine(Root, name);

    public string Write(string name, byte[] bytes)
    {
        var p = File(name);
        System.IO.File.WriteAllBytes(p, bytes);
        return p;
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

internal static class FormatTestUtil
{
    public static string Fixture(string name) => Fixtures.Path("formats", name);

    public static byte[] FixtureBytes(string name) => System.IO.File.ReadAllBytes(Fixture(name));

    public static readonly DType[] DenseTypes =
    [
        DType.Float32, DType.Float64, DType.Float16, DType.BFloat16, DType.Int8, DType.UInt8,
        DType.Int16, DType.Int32, DType.Int64, DType.Bool,
    ];

    public static readonly int[][] Shapes =
    [
        [], [0], [3, 0], [0, 2, 0], [5], [2, 3], [2, 3, 4], [1, 2, 3, 2], [2, 1, 2, 1, 3],
    ];

    /// <summary>A tensor whose elements differ (and, for multi-byte types, whose bytes are not palindromes).</summary>
    public static Tensor Sample(DType dtype, int[] shape, int seed = 1)
    {
        var t = Tensor.Zeros(dtype, shape);
        var rng = new Random(seed);
        for (int i = 0; i < t.Length; i++)
        {
            double v = (i + 1) * (i % 2 == 0 ? 1 : -1) + rng.Next(0, 4) * 0.25;
            switch (t.Data)
            {
                case float[] a: a[i] = (float)(v * 1.5); break;
                case double[] a: a[i] = v / 3.0; break;
                case Half[] a: a[i] = (Half)v; break;
                case ushort[] a: a[i] = (ushort)(BitConverter.SingleToInt32Bits((float)v) >> 16); break;
                case sbyte[] a: a[i] = (sbyte)(i * 37 - 100); break;
                case byte[] a: a[i] = (byte)(i * 53 + 7); break;
                case short[] a: a[i] = (short)(i * 1031 - 20000); break;
                case int[] a: a[i] = i * 1_000_003 - 7; break;
                case long[] a: a[i] = (long)i * 10_000_000_019L - (1L << 40); break;
                case bool[] a: a[i] = rng.Next(2) == 1; break;
            }
        }
        return t;
    }

    public static void AssertSameTensor(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.DType, actual.DType);
        Assert.Equal(expected.Shape, actual.Shape);
        Assert.True(expected.AsBytes().SequenceEqual(actual.AsBytes()), $"data of {expected} differs");
    }

    /// <summary>Asserts the action throws our exception with this code, naming <paramref name="target"/>.</summary>
    public static QuantToolsException AssertFails(ErrorCode code, string target, Action a)
    {
        var ex = Assert.Throws<QuantToolsException>(a);
        Assert.True(code == ex.Code, $"expected {code}, got {ex.Code}: {ex.Message}");
        Assert.Equal(target, ex.Target);
        Assert.Contains(target, ex.Message);
        return ex;
    }

    /// <summary>A .npy with an arbitrary header text, padded numpy-style (for crafting bad headers).</summary>
    public static byte[] Npy(string header, byte[] data, int version = 1)
    {
        var hb = (version == 3 ? Encoding.UTF8 : Encoding.Latin1).GetBytes(header);
        int lenBytes = version == 1 ? 2 : 4;
        int hlen = hb.Length + 1;
        int pad = 64 - (8 + lenBytes + hlen) % 64;
        var ms = new MemoryStream();
        ms.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)version, 0]);
        if (version == 1) ms.Write(BitConverter.GetBytes((ushort)(hlen + pad)));
        else ms.Write(BitConverter.GetBytes((uint)(hlen + pad)));
        ms.Write(hb);
        for (int i = 0; i < pad; i++) ms.WriteByte((byte)' ');
        ms.WriteByte((byte)'\n');
        ms.Write(data);
        return ms.ToArray();
    }

    public static byte[] Floats(params float[] v)
    {
        var b = new byte[v.Length * 4];
        Buffer.BlockCopy(v, 0, b, 0, b.Length);
        return b;
    }
}
