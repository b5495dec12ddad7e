using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Requantization;

namespace QuantTools.Core.Tests.ConvLinear;

/// <summary>The vector requantization epilogues equal the scalar formula, including cvtps2dq overflow and every saturation.</summary>
public class OutputStagePathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static int[] Raws(Random rng, int n)
    {
        int[] special = [0, 1, -1, int.MaxValue, int.MinValue, 32767, 32768, -32768, -32769, 1 << 24, (1 << 24) + 1, -(1 << 30)];
        return Enumerable.Range(0, n).Select(i => i < special.Length ? special[i] : i % 3 == 0 ? rng.Next() - (1 << 30) : rng.Next(-70000, 70000)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EpiloguesEqualScalar(KernelPath path)
    {
        var rng = new Random(9);
        foreach (var backend in new[] { QBackend.Fbgemm, QBackend.Qnnpack, QBackend.Onednn })
            foreach (double inScale in new[] { 0.02, 1.0, 1e4 })
                foreach (bool relu in new[] { false, true })
                    foreach (bool hasBias in new[] { false, true })
                        foreach (long zp in new long[] { 0, 1, 128, 255 })
                        {
                            int n = 37;
                            var ws = Enumerable.Range(0, n).Select(i => (float)(0.001 + rng.NextDouble() * (i % 5 == 0 ? 100 : 0.01))).ToArray();
                            var bias = hasBias ? Enumerable.Range(0, n).Select(i => (float)((rng.NextDouble() - 0.5) * (i % 7 == 0 ? 1e9 : 10))).ToArray() : null;
                            var st = new OutputStage(backend, inScale, ws, bias, 0.05, zp, relu, rng.Next(2) == 0);
                            var raw = Raws(rng, 300);
                            // per channel (conv): every channel over all raws
                            for (int ch = 0; ch < n; ch++)
                            {
                                var e = raw.Select(r => st.Apply(r, ch)).ToArray();
                                var a = new byte[raw.Length];
                                st.ApplyChannel(raw, a, ch, path);
                                Assert.True(e.AsSpan().SequenceEqual(a), $"{path} {backend} channel {ch}");
                            }
                            // per row (linear): element j is channel j
                            for (int row = 0; row < 8; row++)
                            {
                                var r = raw.Skip(row * n).Take(n).ToArray();
                                var e = r.Select((v, j) => st.Apply(v, j)).ToArray();
                                var a = new byte[n];
                                st.ApplyRow(r, a, path);
                                Assert.True(e.AsSpan().SequenceEqual(a), $"{path} {backend} row {row}");
                            }
                        }
    }
}
