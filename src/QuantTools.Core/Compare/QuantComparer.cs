using QuantTools.Core.Tensors;

namespace QuantTools.Core.Compare;

/// <summary>
/// Compares a Reference run with a Difference run layer by layer (or two tensors): float metrics on (dequantized)
/// values, LSB metrics on integers when both sides sit on one grid, the first layer past the thresholds, and hints.
/// </summary>
public static class QuantComparer
{
    /// <summary>Compares two tensors (Tensor or QTensor) as one layer named <paramref name="layer"/>.</summary>
    public static ComparisonResult CompareTensors(object reference, object difference, CompareOptions? options = null, string layer = "output")
    {
        options ??= new CompareOptions();
        if (options.BatchIndex is { } bi)
        {
            reference = BatchSlice.Take(reference, bi, layer);
            difference = BatchSlice.Take(difference, bi, layer);
        }
        var (result, data) = Measure(layer, layer, LayerMatch.Name, 0, reference, difference, options);
        if (!result.Passed) result.Hints = HintAnalyzer.Analyze(data, options, upstream: null);
        return result;
    }

    /// <summary>
    /// Compares two sets of named layers, Reference in model order. A layer whose shapes differ is reported through
    /// <paramref name="onError"/> (and skipped) when given, else throws. A comparison of nothing (no layer aligned, or
    /// every aligned layer a shape error) throws: it must never read as a pass.
    /// </summary>
    public static ComparisonSummary Compare(IReadOnlyList<(string Name, object Value)> reference,
        IReadOnlyList<(string Name, object Value)> difference, CompareOptions? options = null,
        Action<QuantToolsException>? onError = null)
    {
        options ??= new CompareOptions();
        if (options.BatchIndex is { } bi)
        {
            reference = reference.Select(x => (x.Name, BatchSlice.Take(x.Value, bi, x.Name))).ToList();
            difference = difference.Select(x => (x.Name, BatchSlice.Take(x.Value, bi, x.Name))).ToList();
        }
        var (pairs, unRef, unDif) = LayerAligner.Align(reference.Select(x => x.Name).ToList(), difference.Select(x => x.Name).ToList(), options.LayerMap);
        var results = new List<ComparisonResult>();
        var byName = new Dictionary<string, ComparisonResult>(StringComparer.Ordinal);
        ComparisonResult? previous = null;
        string? previousFailedShape = null;
        var shapeErrors = new List<QuantToolsException>();
        foreach (var p in pairs)
        {
            var (rName, rVal) = reference[p.ReferenceIndex];
            var (dName, dVal) = difference[p.DifferenceIndex];
            ComparisonResult result;
            LayerData data;
            try
            {
                (result, data) = Measure(rName, dName, p.Match, p.ReferenceIndex, rVal, dVal, options);
            }
            catch (QuantToolsException e) when (onError is not null)
            {
                shapeErrors.Add(e);
                onError(e);
                previousFailedShape = rName;
                previous = null;
                continue;
            }
            if (!result.Passed)
            {
                var upstream = Upstream(rName, previous, previousFailedShape, byName, options);
                result.Hints = HintAnalyzer.Analyze(data, options, upstream);
            }
            results.Add(result);
            byName[rName] = result;
            previous = result;
            previousFailedShape = null;
        }
        if (results.Count == 0) throw NothingCompared(reference, difference, pairs.Count, shapeErrors, options);
        var first = results.FirstOrDefault(r => !r.Passed);
        var worst = results.Where(r => !double.IsNaN(r.Sqnr)).OrderBy(r => r.Sqnr).FirstOrDefault();
        var kinds = results.Select(r => r.MatchedBy).Distinct().OrderBy(m => m).Select(m => m.ToString()).ToList();
        return new ComparisonSummary
        {
            Layers = results.Count,
            Passed = results.Count(r => r.Passed),
            Failed = results.Count(r => !r.Passed),
            FirstDivergingLayer = first?.Layer,
            Hint = first?.TopHint,
            Cause = first?.TopHint?.Cause,
            MinSqnr = options.MinSqnr,
            MaxLsb = options.MaxLsb,
            WorstSqnr = worst?.Sqnr ?? double.NaN,
            WorstLayer = worst?.Layer,
            Alignment = kinds.Count == 0 ? "None" : string.Join(", ", kinds),
            UnmatchedReference = unRef.Select(i => reference[i].Name).ToList(),
            UnmatchedDifference = unDif.Select(i => difference[i].Name).ToList(),
            Results = results,
        };
    }

    private static QuantToolsException NothingCompared(IReadOnlyList<(string Name, object Value)> reference,
        IReadOnlyList<(string Name, object Value)> difference, int aligned, List<QuantToolsException> shapeErrors, CompareOptions o)
    {
        string Names(IReadOnlyList<(string Name, object Value)> l) => l.Count == 0 ? "none" : string.Join(", ", l.Take(5).Select(x => x.Name)) + (l.Count > 5 ? ", ..." : "");
        string why;
        if (reference.Count == 0 || difference.Count == 0)
            why = $"the {(reference.Count == 0 ? "Reference" : "Difference")} holds no layers";
        else if (aligned == 0)
            why = $"no layer of the Reference ({Names(reference)}) could be paired with one of the Difference ({Names(difference)}); pair them with -LayerMap";
        else
        {
            why = $"every one of the {aligned} paired layer(s) has different shapes (first: layer '{shapeErrors[0].Target}': {shapeErrors[0].Message})";
            bool batch = shapeErrors.Any(e => e.Message.Contains("reference shape [", StringComparison.Ordinal));
            if (batch && o.BatchIndex is null)
                why += "; when one side is a whole batch and the other one element (a golden model file records input 0), -BatchIndex 0 compares that element";
        }
        return new QuantToolsException(ErrorCode.InvalidArgument, $"nothing was compared: {why}");
    }

    /// <summary>The upstream layer that already differs, if any: from LayerInputs, else the previous layer.</summary>
    private static (string Name, ComparisonResult? Result)? Upstream(string layer, ComparisonResult? previous, string? previousFailedShape,
        Dictionary<string, ComparisonResult> byName, CompareOptions o)
    {
        if (o.LayerInputs is not null && o.LayerInputs.TryGetValue(layer, out var inputs))
        {
            foreach (var i in inputs)
                if (byName.TryGetValue(i, out var r) && Differs(r)) return (i, r);
            return null;
        }
        if (previousFailedShape is not null) return (previousFailedShape, null);
        return previous is not null && Differs(previous) ? (previous.Layer, previous) : null;
    }

    private static bool Differs(ComparisonResult r) =>
        r.DifferingElements is { } d ? d > 0 : !double.IsPositiveInfinity(r.Sqnr);

    internal static (ComparisonResult, LayerData) Measure(string layer, string difLayer, LayerMatch match, int index,
        object reference, object difference, CompareOptions o)
    {
        var x = CompareOperand.From(reference, layer);
        var y = CompareOperand.From(difference, layer);
        if (!x.Shape.SequenceEqual(y.Shape) && !TensorMetrics.Squeeze(x.Shape).SequenceEqual(TensorMetrics.Squeeze(y.Shape)))
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"reference shape {TensorMetrics.Format(x.Shape)} and difference shape {TensorMetrics.Format(y.Shape)}{(difLayer == layer ? "" : $" ('{difLayer}')")} differ",
                layer);
        var shape = x.Shape;

        // integers on one grid
        long[]? ri = null, di = null;
        string? basis = null;
        bool qparamsDiffer = false;
        if (x.QParams is not null && y.IsIntegerTensor)
        {
            y = y.WithGrid(x.QParams, shape);
            basis = "int_repr (Difference integers read with the Reference qparams)";
        }
        else if (y.QParams is not null && x.IsIntegerTensor)
        {
            x = x.WithGrid(y.QParams, shape);
            basis = "int_repr (Reference integers read with the Difference qparams)";
        }
        if (x.Ints is not null && y.Ints is not null)
        {
            if (x.QParams is null || y.QParams is null)
            {
                ri = x.Ints; di = y.Ints; basis ??= "integers";
            }
            else if (TensorMetrics.SameGrid(x.QParams, y.QParams))
            {
                ri = x.Ints; di = y.Ints;
                if (!x.QParams.ZeroPoints.SequenceEqual(y.QParams.ZeroPoints))
                {
                    qparamsDiffer = true;
                    ri = new long[x.Ints.Length]; di = new long[y.Ints.Length];
                    for (int i = 0; i < ri.Length; i++)
                    {
                        ri[i] = x.Ints[i] - x.ZeroPointAt(i) + x.ZeroPointAt(0);
                        di[i] = y.Ints[i] - y.ZeroPointAt(i) + x.ZeroPointAt(0);
                    }
                    basis = "q - zero_point (the zero points differ)";
                }
                else basis ??= "int_repr";
            }
            else qparamsDiffer = true;
        }
        else if (x.QParams is not null && y.Ints is null)
        {
            ri = x.Ints; di = y.QuantizeOnto(x.QParams, shape);
            basis = "Difference quantized with the Reference qparams";
        }
        else if (y.QParams is not null && x.Ints is null)
        {
            ri = x.QuantizeOnto(y.QParams, shape); di = y.Ints;
            basis = "Reference quantized with the Difference qparams";
        }

        var xv = x.Values; var yv = y.Values;
        double sqnr = TensorMetrics.Sqnr(xv, yv);
        var (mse, maxAbs, meanAbs) = TensorMetrics.Errors(xv, yv);
        double cos = TensorMetrics.Cosine(xv, yv);

        long? maxLsb = null; int? differing = null; double? exact = null;
        var hist = new SortedDictionary<long, int>();
        if (ri is not null && di is not null)
        {
            long m = 0; int diff = 0;
            for (int i = 0; i < ri.Length; i++)
            {
                long d = di[i] - ri[i];
                if (d != 0) diff++;
                m = Math.Max(m, Math.Abs(d));
                hist[d] = hist.TryGetValue(d, out var c) ? c + 1 : 1;
            }
            maxLsb = m; differing = diff; exact = ri.Length == 0 ? 1 : 1 - diff / (double)ri.Length;
        }

        double? top1 = null, topk = null; int? k = null;
        var sq = TensorMetrics.Squeeze(shape);
        int last = shape.Length == 0 ? 1 : shape[^1];
        if ((sq.Length is 1 or 2 || o.TopK is not null) && last >= 2 && xv.Length > 0)
        {
            k = Math.Min(o.TopK ?? 5, last);
            (top1, topk) = TensorMetrics.TopKAgreement(xv, yv, last, k.Value);
        }

        bool noThreshold = o.MinSqnr is null && o.MaxLsb is null;
        bool passed = true;
        if (o.MinSqnr is { } minS && !(sqnr >= minS)) passed = false;
        if (maxLsb is { } ml)
        {
            if (o.MaxLsb is { } lim && ml > lim) passed = false;
            if (noThreshold && ml > 0) passed = false;
        }
        else if (o.MinSqnr is null && !double.IsPositiveInfinity(sqnr)) passed = false; // no integers, no SQNR threshold: exact
        if (double.IsNaN(sqnr) && xv.Length > 0) passed = false;

        BadElement? bad = null;
        if (!passed)
        {
            long lim = o.MaxLsb ?? 0;
            int at = -1;
            if (ri is not null && di is not null && (o.MaxLsb is not null || noThreshold))
            {
                for (int i = 0; i < ri.Length; i++) if (Math.Abs(di[i] - ri[i]) > lim) { at = i; break; }
            }
            if (at < 0)
                for (int i = 0; i < xv.Length; i++) if (xv[i] != yv[i] && !(double.IsNaN(xv[i]) && double.IsNaN(yv[i]))) { at = i; break; }
            if (at >= 0)
                bad = new BadElement
                {
                    FlatIndex = at, Index = TensorMetrics.Unravel(at, shape), ReferenceValue = xv[at], DifferenceValue = yv[at],
                    ReferenceInt = ri?[at], DifferenceInt = di?[at],
                };
        }

        var result = new ComparisonResult
        {
            Layer = layer, DifferenceLayer = difLayer, MatchedBy = match, Index = index, Shape = shape, Elements = xv.Length,
            Sqnr = sqnr, Mse = mse, MaxAbsError = maxAbs, MeanAbsError = meanAbs, Cosine = cos,
            MaxLsb = maxLsb, ExactRatio = exact, DifferingElements = differing,
            Top1Agreement = top1, TopKAgreement = topk, TopK = k,
            Passed = passed, FirstBad = bad, LsbHistogram = hist, IntegerBasis = basis,
            ReferenceQParams = x.QParams?.ToString(), DifferenceQParams = y.QParams?.ToString(),
        };
        var data = new LayerData
        {
            Layer = layer, Shape = shape, Reference = x, Difference = y, RefInts = ri, DifInts = di, QParamsDiffer = qparamsDiffer,
        };
        return (result, data);
    }
}

/// <summary>What the hint analysis sees of one layer.</summary>
internal sealed class LayerData
{
    public required string Layer { get; init; }
    public required int[] Shape { get; init; }
    public required CompareOperand Reference { get; init; }
    public required CompareOperand Difference { get; init; }
    public long[]? RefInts { get; init; }
    public long[]? DifInts { get; init; }
    public bool QParamsDiffer { get; init; }
}
