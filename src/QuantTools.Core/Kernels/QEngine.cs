namespace QuantTools.Core.Kernels;

/// <summary>
/// PyTorch's quantized engines (<c>torch.backends.quantized.engine</c>), plus <see cref="FbgemmAvx2"/>: fbgemm as it
/// runs on CPUs without VNNI, where each pair of u8 x s8 products saturates to int16.
/// </summary>
public enum QEngine
{
    X86,
    Fbgemm,
    Qnnpack,
    Onednn,
    FbgemmAvx2,
}

public static class QEngineInfo
{
    public static string TorchName(this QEngine e) => e switch
    {
        QEngine.X86 => "x86",
        QEngine.Fbgemm => "fbgemm",
        QEngine.Qnnpack => "qnnpack",
        QEngine.Onednn => "onednn",
        QEngine.FbgemmAvx2 => "fbgemm-avx2",
        _ => e.ToString(),
    };

    public static QEngine Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "x86" => QEngine.X86,
        "fbgemm" => QEngine.Fbgemm,
        "qnnpack" => QEngine.Qnnpack,
        "onednn" or "mkldnn" => QEngine.Onednn,
        "fbgemm-avx2" or "fbgemmavx2" => QEngine.FbgemmAvx2,
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument,
            $"unknown engine '{name}'; expected x86, fbgemm, qnnpack, onednn or fbgemm-avx2"),
    };
}
