using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels.Native;

/// <summary>
/// The optional native VPDPBUSD kernels (libqt_gemm.so, built from src/QuantTools.Native/qt_gemm.c when a C compiler
/// was there at build time). .NET exposes no AVX512-VNNI intrinsics, so the u8 x s8 → s32 dot products of the exact
/// (non-saturating) conv / linear backends run there. Loaded once from the folder of QuantTools.Core.dll; available
/// only when the library loads and the CPU (and OS) run AVX512F, AVX512BW and AVX512-VNNI. Setting the environment
/// variable <c>QUANTTOOLS_NATIVE=0</c> turns it off.
/// </summary>
internal static unsafe class NativeVnni
{
    public const string LibraryName = "libqt_gemm.so";

    [StructLayout(LayoutKind.Sequential)]
    public struct Requant
    {
        public float* Mult;
        public float* Beta;
        public int* QBias;
        public int Qnnpack, Zp, Lo, Hi;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct LinearArgs
    {
        public int M, N, K, Kq, Lda;
        public int AZp, NeedXSum, Pad;
        public sbyte* Wp;
        public int* WSum;
        public int* WZp;
        public int* XSum;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct ConvArgs
    {
        public int Batch, Cin, H, W, Oc, Groups;
        public int Kh, Kw, Sh, Sw, Ph, Pw, Dh, Dw, Oh, Ow;
        public int K, Kq, AZp, NeedXSum;
        public sbyte* Wq;
        public int* WSum;
        public int* WZp;
    }

    /// <summary>Columns per packed panel and rows per tile of the native kernels.</summary>
    public const int PanelCols = 64, TileRows = 6;

    private static readonly delegate* unmanaged<LinearArgs*, Requant*, byte*, byte*, int*, long, long, void> _linear;
    private static readonly delegate* unmanaged<byte*, int, int, int, int*, void> _rowSums;
    private static readonly delegate* unmanaged<ConvArgs*, Requant*, byte*, byte*, int*, long, long, byte*, void> _conv;
    private static readonly delegate* unmanaged<ConvArgs*, long> _convUnits;
    private static readonly delegate* unmanaged<ConvArgs*, long> _convScratch;

    /// <summary>True when the library loaded and this CPU runs it.</summary>
    public static bool Available { get; }

    /// <summary>Why the native path is off (for diagnostics), or null when it is on.</summary>
    public static string? Unavailable { get; }

    static NativeVnni()
    {
        try
        {
            if (Environment.GetEnvironmentVariable("QUANTTOOLS_NATIVE") is "0" or "false")
            { Unavailable = "QUANTTOOLS_NATIVE=0"; return; }
            if (!CpuHasVnni()) { Unavailable = "the CPU (or OS) lacks AVX512F/BW/VNNI"; return; }
            var dir = Path.GetDirectoryName(typeof(NativeVnni).Assembly.Location);
            if (string.IsNullOrEmpty(dir)) dir = AppContext.BaseDirectory;
            var path = Path.Combine(dir, LibraryName);
            if (!File.Exists(path) || !NativeLibrary.TryLoad(path, out var h))
            { Unavailable = $"{path} not found or not loadable"; return; }
            nint Get(string name) => NativeLibrary.TryGetExport(h, name, out var p) ? p : 0;
            nint ver = Get("qt_version"), cpu = Get("qt_cpu_ok"), lin = Get("qt_linear"), rs = Get("qt_row_sums"),
                conv = Get("qt_conv"), cu = Get("qt_conv_units"), cs = Get("qt_conv_scratch");
            if (ver == 0 || cpu == 0 || lin == 0 || rs == 0 || conv == 0 || cu == 0 || cs == 0)
            { Unavailable = $"{path} lacks an export"; return; }
            if (((delegate* unmanaged<int>)ver)() != 1) { Unavailable = $"{path} has another version"; return; }
            if (((delegate* unmanaged<int>)cpu)() == 0) { Unavailable = "the library's CPU check failed"; return; }
            _linear = (delegate* unmanaged<LinearArgs*, Requant*, byte*, byte*, int*, long, long, void>)lin;
            _rowSums = (delegate* unmanaged<byte*, int, int, int, int*, void>)rs;
            _conv = (delegate* unmanaged<ConvArgs*, Requant*, byte*, byte*, int*, long, long, byte*, void>)conv;
            _convUnits = (delegate* unmanaged<ConvArgs*, long>)cu;
            _convScratch = (delegate* unmanaged<ConvArgs*, long>)cs;
            Available = true;
        }
        catch (Exception e)
        {
            Unavailable = e.Message;
            Available = false;
        }
    }

    /// <summary>CPUID leaf 7: EBX bit 16 AVX512F, bit 30 AVX512BW, ECX bit 11 AVX512-VNNI; the OS must save ZMM state
    /// (the runtime's Avx512F / Avx512BW support already requires it).</summary>
    private static bool CpuHasVnni()
    {
        if (!X86Base.IsSupported || !Avx512F.IsSupported || !Avx512BW.IsSupported) return false;
        var (maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        if (maxLeaf < 7) return false;
        var (_, ebx, ecx, _) = X86Base.CpuId(7, 0);
        return (ebx & (1 << 16)) != 0 && (ebx & (1 << 30)) != 0 && (ecx & (1 << 11)) != 0;
    }

    public static void Linear(LinearArgs* a, Requant* rq, byte* x, byte* y, int* raw, long u0, long u1) =>
        _linear(a, rq, x, y, raw, u0, u1);

    public static void RowSums(byte* x, int m, int len, int lda, int* outSums) => _rowSums(x, m, len, lda, outSums);

    public static void Conv(ConvArgs* a, Requant* rq, byte* x, byte* y, int* raw, long u0, long u1, byte* scratch) =>
        _conv(a, rq, x, y, raw, u0, u1, scratch);

    public static long ConvUnits(ConvArgs* a) => _convUnits(a);

    public static long ConvScratch(ConvArgs* a) => _convScratch(a);

    /// <summary>Splits <paramref name="units"/> into <paramref name="parts"/> contiguous ranges of sizes differing by at most one.</summary>
    public static (long, long) Range(long units, int parts, int i) => (units * i / parts, units * (i + 1) / parts);
}
