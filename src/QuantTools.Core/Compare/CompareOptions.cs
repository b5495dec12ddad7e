using QuantTools.Core.Tensors;

namespace QuantTools.Core.Compare;

/// <summary>Thresholds and alignment for <see cref="QuantComparer"/>.</summary>
public sealed class CompareOptions
{
    /// <summary>A layer fails below this SQNR (dB). With neither threshold set, a layer passes only when it is exact.</summary>
    public double? MinSqnr { get; init; }
    /// <summary>A layer fails when an integer differs by more than this many steps.</summary>
    public long? MaxLsb { get; init; }
    /// <summary>k for top-k agreement along the last dim (computed for tensors of rank 1-2, logits); default min(5, last dim).</summary>
    public int? TopK { get; init; }
    /// <summary>Name pairs (either direction) or regex rules (pattern -> replacement) between Difference and Reference names.</summary>
    public IReadOnlyList<KeyValuePair<string, string>>? LayerMap { get; init; }
    /// <summary>Reference layer name -> the float tensor that layer quantized (its input), for the rounding-midpoint check.</summary>
    public IReadOnlyDictionary<string, Tensor>? FloatInputs { get; init; }
    /// <summary>Reference layer name -> the layers feeding it; without it a layer's input is the previous layer.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>>? LayerInputs { get; init; }
    /// <summary>How close (in LSB) to x.5 a pre-rounding value must be to count as a rounding midpoint.</summary>
    public double MidpointTolerance { get; init; } = 0.1;
    /// <summary>
    /// Compare only this element of each batch: tensors of rank 2+ with a first dimension above 1 are cut to that element
    /// (a golden model JSON holds batch element 0 of every layer). Null compares whole tensors.
    /// </summary>
    public int? BatchIndex { get; init; }
    /// <summary>Channel axis for the per-channel checks; default 1 for tensors of rank 2 or more.</summary>
    public int? ChannelAxis { get; init; }
}
