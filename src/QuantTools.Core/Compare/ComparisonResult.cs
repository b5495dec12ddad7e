namespace QuantTools.Core.Compare;

/// <summary>Likely causes of a layer's divergence, as <see cref="QuantHint.Cause"/> names them.</summary>
public enum HintCause
{
    /// <summary>All differences are +-1 LSB at values on rounding midpoints: half-even vs half-away (or up) rounding.</summary>
    RoundingMode,
    /// <summary>Differences only at a clamp bound: a ReLU6 / clamp bound computed out of range (wrapped), or a missing saturation.</summary>
    ClampBound,
    /// <summary>A constant integer offset over the whole tensor: the zero point differs.</summary>
    ZeroPoint,
    /// <summary>A per-channel error proportional to the value: a per-channel (weight) scale differs.</summary>
    PerChannelScale,
    /// <summary>A per-channel constant offset: the bias was quantized differently.</summary>
    BiasQuantization,
    /// <summary>Errors only at large magnitudes: int16 saturation of product pairs (reduce_range not honoured).</summary>
    Int16Saturation,
    /// <summary>The layer's input already differs: the first cause is upstream.</summary>
    Inherited,
    /// <summary>The declared qparams of the two sides differ (scale or zero point).</summary>
    QParams,
    /// <summary>Differences with none of the signatures above.</summary>
    Unknown,
}

/// <summary>One likely cause with how sure the analysis is (0..1) and the counts that support it.</summary>
public sealed class QuantHint
{
    public required HintCause Cause { get; init; }
    public required double Confidence { get; init; }
    /// <summary>What was counted, in words.</summary>
    public required string Evidence { get; init; }
    /// <summary>The evidence counts by name (differing elements, how many fit the signature, ...).</summary>
    public IReadOnlyDictionary<string, double> Counts { get; init; } = new Dictionary<string, double>();
    /// <summary>For <see cref="HintCause.Inherited"/>: the upstream layer that already differs.</summary>
    public string? Upstream { get; init; }

    public override string ToString() => $"{Cause} ({Confidence:P0}): {Evidence}";
}

/// <summary>The first element past the thresholds, with both values.</summary>
public sealed class BadElement
{
    public required int FlatIndex { get; init; }
    public required int[] Index { get; init; }
    public required double ReferenceValue { get; init; }
    public required double DifferenceValue { get; init; }
    public long? ReferenceInt { get; init; }
    public long? DifferenceInt { get; init; }

    public override string ToString()
    {
        var idx = "[" + string.Join(", ", Index) + "]";
        return ReferenceInt is { } r && DifferenceInt is { } d
            ? $"{idx}: reference {r} ({ReferenceValue:G6}), difference {d} ({DifferenceValue:G6})"
            : $"{idx}: reference {ReferenceValue:G9}, difference {DifferenceValue:G9}";
    }
}

/// <summary>How a Difference layer was paired with a Reference layer.</summary>
public enum LayerMatch
{
    /// <summary>Same name (exactly, or after normalizing case and separators).</summary>
    Name,
    /// <summary>Through the LayerMap.</summary>
    Map,
    /// <summary>By position, when names could not be matched.</summary>
    Position,
}

/// <summary>The comparison of one layer (or one tensor) of a Reference run with a Difference run.</summary>
public sealed class ComparisonResult
{
    public required string Layer { get; init; }
    /// <summary>The Difference side's name for this layer.</summary>
    public required string DifferenceLayer { get; init; }
    public required LayerMatch MatchedBy { get; init; }
    /// <summary>Position in model (Reference) order, from 0.</summary>
    public int Index { get; init; }
    public required int[] Shape { get; init; }
    public int Elements { get; init; }
    /// <summary>20 log10(||x|| / ||x − y||) in dB (PyTorch Numeric Suite); +inf when equal.</summary>
    public double Sqnr { get; init; }
    public double Mse { get; init; }
    public double MaxAbsError { get; init; }
    public double MeanAbsError { get; init; }
    public double Cosine { get; init; }
    /// <summary>Max |difference| in integer steps; null when a side has no integer representation on a shared grid.</summary>
    public long? MaxLsb { get; init; }
    /// <summary>Share of exactly equal integers; null without integers.</summary>
    public double? ExactRatio { get; init; }
    /// <summary>Elements whose integers differ; null without integers.</summary>
    public int? DifferingElements { get; init; }
    /// <summary>Share of rows (last dim) whose argmax agrees; null when not computed.</summary>
    public double? Top1Agreement { get; init; }
    /// <summary>Mean overlap of the top-k sets per row (|top-k(x) ∩ top-k(y)| / k); null when not computed.</summary>
    public double? TopKAgreement { get; init; }
    public int? TopK { get; init; }
    public required bool Passed { get; init; }
    public BadElement? FirstBad { get; init; }
    public IReadOnlyList<QuantHint> Hints { get; set; } = [];
    /// <summary>Histogram of integer differences (difference − reference), value → count; empty without integers.</summary>
    public IReadOnlyDictionary<long, int> LsbHistogram { get; init; } = new Dictionary<long, int>();
    /// <summary>How integers were compared: "int_repr", "int_repr (Difference uses the Reference qparams)", ...; null without.</summary>
    public string? IntegerBasis { get; init; }
    public string? ReferenceQParams { get; init; }
    public string? DifferenceQParams { get; init; }

    public QuantHint? TopHint => Hints.Count > 0 ? Hints[0] : null;
    public HintCause? Cause => TopHint?.Cause;

    public override string ToString() =>
        $"{Layer}: SQNR {Sqnr:F1} dB, MaxLsb {MaxLsb?.ToString() ?? "-"}, {(Passed ? "passed" : "FAILED")}{(TopHint is { } h ? ", " + h.Cause : "")}";
}

/// <summary>The whole comparison: thresholds, counts and the first layer past them.</summary>
public sealed class ComparisonSummary
{
    public int Layers { get; init; }
    public int Passed { get; init; }
    public int Failed { get; init; }
    /// <summary>The first layer (model order) past MinSqnr / MaxLsb, or null when all pass.</summary>
    public string? FirstDivergingLayer { get; init; }
    /// <summary>The top hint's cause at the first diverging layer.</summary>
    public HintCause? Cause { get; init; }
    public QuantHint? Hint { get; init; }
    public double? MinSqnr { get; init; }
    public long? MaxLsb { get; init; }
    /// <summary>The lowest SQNR over all layers and where.</summary>
    public double WorstSqnr { get; init; }
    public string? WorstLayer { get; init; }
    /// <summary>Name, Map, Position, or a mix ("Name, Position").</summary>
    public required string Alignment { get; init; }
    public IReadOnlyList<string> UnmatchedReference { get; init; } = [];
    public IReadOnlyList<string> UnmatchedDifference { get; init; } = [];
    public IReadOnlyList<ComparisonResult> Results { get; init; } = [];

    public override string ToString() => FirstDivergingLayer is null
        ? $"{Passed}/{Layers} layers pass"
        : $"{Failed}/{Layers} layers fail; first diverging layer {FirstDivergingLayer} ({Cause})";
}
