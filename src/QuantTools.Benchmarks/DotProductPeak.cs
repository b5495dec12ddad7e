using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Benchmarks;

/// <summary>
/// Throughput peaks of the int8 dot-product instructions, for the "fraction of peak" of the conv / linear rows.
/// Every loop runs 12 independent accumulators (more than latency x throughput on current x86 cores) on register
/// operands only, and does <see cref="Macs"/> multiply-accumulates (u8 x s8 for VPDPBUSD, s16 x s16 for VPMADDWD).
/// <para>
/// .NET 10 exposes VPDPBUSD only as <c>AvxVnni.MultiplyWideningAndAdd</c> (the VEX form, 128/256-bit) and through
/// Avx10v1/Avx10v2; it has no Avx512Vnni class for the EVEX form of AVX512-VNNI CPUs (Intel Ice Lake..Sapphire Rapids
/// servers, AMD Zen 4). On a Zen 4 neither AvxVnni nor Avx10 is reported, so the .NET form cannot run there, while
/// oneDNN and ONNX Runtime (MLAS) do use the EVEX instruction. To measure the peak the peers can reach, the EVEX
/// loops below are a few bytes of machine code (assembled with GNU as from the listing in the comments, copied to an
/// executable page and called through an unmanaged function pointer); each is checked against a scalar computation
/// before it is timed.
/// </para>
/// </summary>
internal static unsafe class DotProductPeak
{
    /// <summary>Loop trips of every peak loop: 2^19 x 12 instructions x 32 MACs (256-bit) = 2^19 x 384 MACs.</summary>
    public const long Iterations256 = 1 << 19;
    public const long Macs = Iterations256 * 12 * 32;

    // void f(long iters /*rdi*/, const int* a /*rsi*/, const int* b /*rdx*/, int* acc /*rcx*/)
    // a, b: loaded once into zmm30/zmm31 (ymm30/31); acc: the initial value of all 12 accumulators; after the loop the
    // first and the last accumulator are stored to acc[0..] and acc[lanes..].

    // z512:  vmovdqu32 zmm30,[rsi]; vmovdqu32 zmm31,[rdx]; vmovdqu32 zmm0,[rcx]; vmovdqa64 zmm1..zmm11, zmm0
    //   1:   vpdpbusd zmm0..zmm11, zmm30, zmm31 (12x); dec rdi; jnz 1b
    //        vmovdqu32 [rcx], zmm0; vmovdqu32 [rcx+64], zmm11; vzeroupper; ret
    private static readonly byte[] Vpdpbusd512Code =
    [
        0x62, 0x61, 0x7E, 0x48, 0x6F, 0x36, 0x62, 0x61, 0x7E, 0x48, 0x6F, 0x3A, 0x62, 0xF1, 0x7E, 0x48, 0x6F, 0x01, 0x62, 0xF1,
        0xFD, 0x48, 0x6F, 0xC8, 0x62, 0xF1, 0xFD, 0x48, 0x6F, 0xD0, 0x62, 0xF1, 0xFD, 0x48, 0x6F, 0xD8, 0x62, 0xF1, 0xFD, 0x48,
        0x6F, 0xE0, 0x62, 0xF1, 0xFD, 0x48, 0x6F, 0xE8, 0x62, 0xF1, 0xFD, 0x48, 0x6F, 0xF0, 0x62, 0xF1, 0xFD, 0x48, 0x6F, 0xF8,
        0x62, 0x71, 0xFD, 0x48, 0x6F, 0xC0, 0x62, 0x71, 0xFD, 0x48, 0x6F, 0xC8, 0x62, 0x71, 0xFD, 0x48, 0x6F, 0xD0, 0x62, 0x71,
        0xFD, 0x48, 0x6F, 0xD8, 0x62, 0x92, 0x0D, 0x40, 0x50, 0xC7, 0x62, 0x92, 0x0D, 0x40, 0x50, 0xCF, 0x62, 0x92, 0x0D, 0x40,
        0x50, 0xD7, 0x62, 0x92, 0x0D, 0x40, 0x50, 0xDF, 0x62, 0x92, 0x0D, 0x40, 0x50, 0xE7, 0x62, 0x92, 0x0D, 0x40, 0x50, 0xEF,
        0x62, 0x92, 0x0D, 0x40, 0x50, 0xF7, 0x62, 0x92, 0x0D, 0x40, 0x50, 0xFF, 0x62, 0x12, 0x0D, 0x40, 0x50, 0xC7, 0x62, 0x12,
        0x0D, 0x40, 0x50, 0xCF, 0x62, 0x12, 0x0D, 0x40, 0x50, 0xD7, 0x62, 0x12, 0x0D, 0x40, 0x50, 0xDF, 0x48, 0xFF, 0xCF, 0x75,
        0xB3, 0x62, 0xF1, 0x7E, 0x48, 0x7F, 0x01, 0x62, 0x71, 0x7E, 0x48, 0x7F, 0x59, 0x01, 0xC5, 0xF8, 0x77, 0xC3,
    ];

    // y256 (EVEX-encoded 256-bit VPDPBUSD, AVX512-VNNI + VL): as z512 with ymm30/ymm31 and accumulators ymm16..ymm27
    //        vmovdqu32 [rcx], ymm16; vmovdqu32 [rcx+32], ymm27; vzeroupper; ret
    private static readonly byte[] Vpdpbusd256Code =
    [
        0x62, 0x61, 0x7E, 0x28, 0x6F, 0x36, 0x62, 0x61, 0x7E, 0x28, 0x6F, 0x3A, 0x62, 0xE1, 0x7E, 0x28, 0x6F, 0x01, 0x62, 0xA1,
        0xFD, 0x28, 0x6F, 0xC8, 0x62, 0xA1, 0xFD, 0x28, 0x6F, 0xD0, 0x62, 0xA1, 0xFD, 0x28, 0x6F, 0xD8, 0x62, 0xA1, 0xFD, 0x28,
        0x6F, 0xE0, 0x62, 0xA1, 0xFD, 0x28, 0x6F, 0xE8, 0x62, 0xA1, 0xFD, 0x28, 0x6F, 0xF0, 0x62, 0xA1, 0xFD, 0x28, 0x6F, 0xF8,
        0x62, 0x21, 0xFD, 0x28, 0x6F, 0xC0, 0x62, 0x21, 0xFD, 0x28, 0x6F, 0xC8, 0x62, 0x21, 0xFD, 0x28, 0x6F, 0xD0, 0x62, 0x21,
        0xFD, 0x28, 0x6F, 0xD8, 0x62, 0x82, 0x0D, 0x20, 0x50, 0xC7, 0x62, 0x82, 0x0D, 0x20, 0x50, 0xCF, 0x62, 0x82, 0x0D, 0x20,
        0x50, 0xD7, 0x62, 0x82, 0x0D, 0x20, 0x50, 0xDF, 0x62, 0x82, 0x0D, 0x20, 0x50, 0xE7, 0x62, 0x82, 0x0D, 0x20, 0x50, 0xEF,
        0x62, 0x82, 0x0D, 0x20, 0x50, 0xF7, 0x62, 0x82, 0x0D, 0x20, 0x50, 0xFF, 0x62, 0x02, 0x0D, 0x20, 0x50, 0xC7, 0x62, 0x02,
        0x0D, 0x20, 0x50, 0xCF, 0x62, 0x02, 0x0D, 0x20, 0x50, 0xD7, 0x62, 0x02, 0x0D, 0x20, 0x50, 0xDF, 0x48, 0xFF, 0xCF, 0x75,
        0xB3, 0x62, 0xE1, 0x7E, 0x28, 0x7F, 0x01, 0x62, 0x61, 0x7E, 0x28, 0x7F, 0x59, 0x01, 0xC5, 0xF8, 0x77, 0xC3,
    ];

    private static readonly bool HasAvx512Vnni = Avx512F.IsSupported && Avx512BW.IsSupported && Avx512F.VL.IsSupported &&
        (X86Base.CpuId(7, 0).Ecx & (1 << 11)) != 0;

    /// <summary>Why the EVEX (AVX512-VNNI) loops cannot run here, or null.</summary>
    public static string? EvexUnavailable => !HasAvx512Vnni ? "this CPU has no AVX512-VNNI (CPUID.7.0:ECX[11] with AVX512F/BW/VL)"
        : !OperatingSystem.IsLinux() ? "the machine-code loop is only wired up on Linux (mmap/mprotect)" : null;

    /// <summary>Why the .NET AvxVnni loop cannot run here, or null.</summary>
    public static string? AvxVnniUnavailable => AvxVnni.IsSupported ? null
        : "AvxVnni.IsSupported is false (no VEX AVX-VNNI on this CPU; .NET has no Avx512Vnni class for the EVEX form)";

    private static delegate* unmanaged<long, int*, int*, int*, void> _z512;
    private static delegate* unmanaged<long, int*, int*, int*, void> _y256;
    private static int* _a, _b, _acc;

    [DllImport("libc", SetLastError = true)] private static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);
    [DllImport("libc", SetLastError = true)] private static extern int mprotect(nint addr, nuint length, int prot);

    private static delegate* unmanaged<long, int*, int*, int*, void> Map(byte[] code)
    {
        const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;
        nint p = mmap(0, 4096, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (p == -1) throw new InvalidOperationException($"mmap failed (errno {Marshal.GetLastPInvokeError()})");
        Marshal.Copy(code, 0, p, code.Length);
        if (mprotect(p, 4096, ProtRead | ProtExec) != 0)
            throw new InvalidOperationException($"mprotect failed (errno {Marshal.GetLastPInvokeError()})");
        return (delegate* unmanaged<long, int*, int*, int*, void>)p;
    }

    /// <summary>Maps the EVEX loops once and checks each against a scalar VPDPBUSD.</summary>
    public static void EnsureEvex()
    {
        if (_z512 != null) return;
        if (EvexUnavailable is { } why) throw new NotSupportedException(why);
        _a = (int*)NativeMemory.AlignedAlloc(64, 64);
        _b = (int*)NativeMemory.AlignedAlloc(64, 64);
        _acc = (int*)NativeMemory.AlignedAlloc(256, 64);
        var z = Map(Vpdpbusd512Code);
        var y = Map(Vpdpbusd256Code);
        Check(z, 16, "512-bit");
        Check(y, 8, "256-bit");
        _z512 = z;
        _y256 = y;
    }

    private static void Check(delegate* unmanaged<long, int*, int*, int*, void> f, int lanes, string what)
    {
        var rng = new Random(7);
        var a = new byte[64];
        var b = new sbyte[64];
        rng.NextBytes(a);
        for (int i = 0; i < 64; i++) b[i] = (sbyte)rng.Next(-128, 128);
        fixed (byte* pa = a) Buffer.MemoryCopy(pa, _a, 64, 64);
        fixed (sbyte* pb = b) Buffer.MemoryCopy(pb, _b, 64, 64);
        const int iters = 1000;
        for (int j = 0; j < 64; j++) _acc[j] = 12345 - j;
        var init = new int[lanes];
        for (int j = 0; j < lanes; j++) init[j] = 12345 - j;
        f(iters, _a, _b, _acc);
        for (int j = 0; j < lanes; j++)
        {
            int dot = 0;
            for (int t = 0; t < 4; t++) dot += a[4 * j + t] * b[4 * j + t];
            int expect = unchecked(init[j] + iters * dot);
            if (_acc[j] != expect || _acc[lanes + j] != expect)
                throw new InvalidOperationException($"VPDPBUSD {what} machine code check failed at lane {j}: {_acc[j]} / {_acc[lanes + j]}, expected {expect}");
        }
    }

    /// <summary>Macs multiply-accumulates with 512-bit EVEX VPDPBUSD (64 per instruction).</summary>
    public static void Vpdpbusd512(long macs = Macs) => _z512(macs / (12 * 64), _a, _b, _acc);

    /// <summary>Macs multiply-accumulates with 256-bit EVEX VPDPBUSD (32 per instruction).</summary>
    public static void Vpdpbusd256(long macs = Macs) => _y256(macs / (12 * 32), _a, _b, _acc);

    /// <summary>
    /// Macs multiply-accumulates with .NET's <c>AvxVnni.MultiplyWideningAndAdd</c> (VEX VPDPBUSD, 256-bit): each
    /// accumulator depends on itself only, so the JIT cannot hoist anything out of the loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static Vector256<int> AvxVnni256(Vector256<byte> a, Vector256<sbyte> b, long macs = Macs)
    {
        var c0 = Vector256<int>.Zero; var c1 = c0; var c2 = c0; var c3 = c0; var c4 = c0; var c5 = c0;
        var c6 = c0; var c7 = c0; var c8 = c0; var c9 = c0; var c10 = c0; var c11 = c0;
        for (long i = macs / (12 * 32); i > 0; i--)
        {
            c0 = AvxVnni.MultiplyWideningAndAdd(c0, a, b); c1 = AvxVnni.MultiplyWideningAndAdd(c1, a, b);
            c2 = AvxVnni.MultiplyWideningAndAdd(c2, a, b); c3 = AvxVnni.MultiplyWideningAndAdd(c3, a, b);
            c4 = AvxVnni.MultiplyWideningAndAdd(c4, a, b); c5 = AvxVnni.MultiplyWideningAndAdd(c5, a, b);
            c6 = AvxVnni.MultiplyWideningAndAdd(c6, a, b); c7 = AvxVnni.MultiplyWideningAndAdd(c7, a, b);
            c8 = AvxVnni.MultiplyWideningAndAdd(c8, a, b); c9 = AvxVnni.MultiplyWideningAndAdd(c9, a, b);
            c10 = AvxVnni.MultiplyWideningAndAdd(c10, a, b); c11 = AvxVnni.MultiplyWideningAndAdd(c11, a, b);
        }
        return ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));
    }

    /// <summary>
    /// Macs multiply-accumulates with <c>Avx512BW.MultiplyAddAdjacent</c> + add (VPMADDWD + VPADDD on 512-bit, 32 s16
    /// MACs per pair), the instruction pair PairGemm's Avx512 tiles run. The second operand is the accumulator of the
    /// previous step shifted into range, so each step depends on the last one and nothing is loop-invariant.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static Vector512<int> Vpmaddwd512(Vector512<short> a, long macs = Macs)
    {
        var c0 = Vector512<int>.Zero; var c1 = c0; var c2 = c0; var c3 = c0; var c4 = c0; var c5 = c0;
        var c6 = c0; var c7 = c0; var c8 = c0; var c9 = c0; var c10 = c0; var c11 = c0;
        for (long i = macs / (12 * 32); i > 0; i--)
        {
            // PairGemm: c += madd(v, b) with v loaded per step; here v is the accumulator itself (a register operand).
            c0 += Avx512BW.MultiplyAddAdjacent(c0.AsInt16(), a); c1 += Avx512BW.MultiplyAddAdjacent(c1.AsInt16(), a);
            c2 += Avx512BW.MultiplyAddAdjacent(c2.AsInt16(), a); c3 += Avx512BW.MultiplyAddAdjacent(c3.AsInt16(), a);
            c4 += Avx512BW.MultiplyAddAdjacent(c4.AsInt16(), a); c5 += Avx512BW.MultiplyAddAdjacent(c5.AsInt16(), a);
            c6 += Avx512BW.MultiplyAddAdjacent(c6.AsInt16(), a); c7 += Avx512BW.MultiplyAddAdjacent(c7.AsInt16(), a);
            c8 += Avx512BW.MultiplyAddAdjacent(c8.AsInt16(), a); c9 += Avx512BW.MultiplyAddAdjacent(c9.AsInt16(), a);
            c10 += Avx512BW.MultiplyAddAdjacent(c10.AsInt16(), a); c11 += Avx512BW.MultiplyAddAdjacent(c11.AsInt16(), a);
        }
        return ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11));
    }
}
