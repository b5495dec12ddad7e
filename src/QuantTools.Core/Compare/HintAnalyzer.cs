using System.Globalization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Compare;

/// <summary>
/// Names the likely cause of a failing layer from the pattern of its integer differences d = difference − reference:
/// an upstream layer that already differs (Inherited), a constant offset (ZeroPoint), a clamp at a wrapped or missing
/// bound (ClampBound), +-1 at rounding midpoints (RoundingMode), per-channel constant offsets (BiasQuantization) or
/// proportional errors (PerChannelScale), errors only at large magnitudes (Int16Saturation); Unknown otherwise.
/// Every hint carries the counts behind it.
/// </summary>
internal static class HintAnalyzer
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static IReadOnlyList<QuantHint> Analyze(LayerData d, CompareOptions o, (string Name, ComparisonResult? Result)? upstream)
    {
        if (upstream is { } u)
        {
            var ur = u.Result;
            string what = ur is null ? "could not be compared" :
                ur.DifferingElements is { } nDiff ? $"already differs in {nDiff} of {ur.Elements} elements (max {ur.MaxLsb} LSB, SQNR {Db(ur.Sqnr)})"
                : $"already differs (SQNR {Db(ur.Sqnr)})";
            return
            [
                new QuantHint
                {
                    Cause = HintCause.Inherited, Confidence = 0.9, Upstream = u.Name,
                    Evidence = $"its input '{u.Name}' {what}; look upstream for the first cause",
                    Counts = new Dictionary<string, double> { ["UpstreamDiffering"] = ur?.DifferingElements ?? double.NaN },
                },
            ];
        }
        var hints = new List<QuantHint>();
        var x = d.Reference; var y = d.Difference;
        if (d.QParamsDiffer)
            hints.Add(new QuantHint
            {
                Cause = HintCause.QParams, Confidence = d.RefInts is null ? 0.7 : 0.4,
                Evidence = $"declared qparams differ: reference {x.QParams}, difference {y.QParams}",
            });
        if (d.RefInts is null || d.DifInts is null)
        {
            if (hints.Count == 0)
                hints.Add(new QuantHint { Cause = HintCause.Unknown, Confidence = 0.1, Evidence = "float tensors without integers: no signature to test" });
            return hints;
        }
        long[] r = d.RefInts, a = d.DifInts;
        int n = r.Length;
        var diffIdx = new List<int>();
        for (int i = 0; i < n; i++) if (a[i] != r[i]) diffIdx.Add(i);
        int nd = diffIdx.Count;
        if (nd == 0)
        {
            if (hints.Count == 0)
                hints.Add(new QuantHint { Cause = HintCause.Unknown, Confidence = 0.1, Evidence = "integers are equal; only the float values differ" });
            return hints;
        }
        var (lo, hi) = x.Range;
        long Zp(int i) => x.ZeroPointAt(i);

        ZeroPointCheck(r, a, n, lo, hi, hints);
        ClampChecks(x, r, a, diffIdx, lo, hi, hints);
        RoundingCheck(d, o, r, a, diffIdx, Zp, hints);
        ChannelChecks(d, o, r, a, diffIdx, Zp, lo, hi, hints);
        SaturationCheck(r, a, diffIdx, Zp, hints);

        if (!hints.Any(h => h.Cause != HintCause.QParams))
        {
            var top = diffIdx.GroupBy(i => a[i] - r[i]).OrderByDescending(g => g.Count()).Take(3)
                .Select(g => $"{g.Key:+0;-0} x{g.Count()}");
            hints.Add(new QuantHint
            {
                Cause = HintCause.Unknown, Confidence = 0.2,
                Evidence = $"{nd} of {n} elements differ ({string.Join(", ", top)}); no known signature fits",
                Counts = new Dictionary<string, double> { ["Differing"] = nd, ["Elements"] = n },
            });
        }
        return hints.OrderByDescending(h => h.Confidence).ToList();
    }

    private static string Db(double v) => double.IsPositiveInfinity(v) ? "inf" : v.ToString("F1", Inv) + " dB";

    private static void ZeroPointCheck(long[] r, long[] a, int n, long lo, long hi, List<QuantHint> hints)
    {
        var mode = Mode(Enumerable.Range(0, n).Select(i => a[i] - r[i]).Where(v => v != 0));
        if (mode is not { } c) return;
        int eligible = 0, fit = 0, clipped = 0;
        for (int i = 0; i < n; i++)
        {
            long t = r[i] + c;
            if (t < lo || t > hi) { if (a[i] == Math.Clamp(t, lo, hi)) clipped++; continue; }
            eligible++;
            if (a[i] - r[i] == c) fit++;
        }
        if (eligible == 0) return;
        double share = fit / (double)eligible;
        if (share >= 0.9 && fit >= 0.5 * n)
            hints.Add(new QuantHint
            {
                Cause = HintCause.ZeroPoint, Confidence = Math.Min(0.98, share),
                Evidence = $"{fit} of {eligible} elements are off by exactly {c:+0;-0} LSB (a constant offset over the tensor); {clipped} more are clipped at the range bound: the zero point differs by {c:+0;-0}",
                Counts = new Dictionary<string, double> { ["Offset"] = c, ["Fit"] = fit, ["Eligible"] = eligible, ["Clipped"] = clipped },
            });
    }

    private static void ClampChecks(CompareOperand x, long[] r, long[] a, List<int> diffIdx, long lo, long hi, List<QuantHint> hints)
    {
        int nd = diffIdx.Count;
        var aVals = diffIdx.Select(i => a[i]).Distinct().Take(2).ToList();
        if (aVals.Count == 1)
        {
            long c = aVals[0];
            bool above = diffIdx.All(i => r[i] > c), below = diffIdx.All(i => r[i] < c);
            if (above || below)
            {
                int beyond = above ? a.Count(v => v > c) : a.Count(v => v < c);
                int atC = a.Count(v => v == c);
                if (beyond == 0)
                {
                    string wrap = "";
                    if (x.QParams is { IsPerChannel: false } qp && qp.DType is DType.QUInt8 or DType.QInt8 && above)
                    {
                        // the bound that wrapped: c + 256k beyond the range, landing (within one step) on a round real value
                        for (int k = 1; k <= 64; k++)
                        {
                            long q = c + 256L * k;
                            double bound = (q - qp.ZeroPoint) * qp.Scale;
                            if (q <= hi || Math.Abs(bound - Math.Round(bound * 2) / 2) > qp.Scale) continue;
                            wrap = string.Format(Inv, "; {0} = {1} mod 256: a bound of {2:F2} ({1} steps at scale {3:G6}, zero point {4}) computed in 8 bits wraps to {0}",
                                c, q, bound, qp.Scale, qp.ZeroPoint);
                            break;
                        }
                    }
                    hints.Add(new QuantHint
                    {
                        Cause = HintCause.ClampBound, Confidence = nd >= 3 ? 0.95 : 0.6,
                        Evidence = $"{nd} elements differ, all where the reference is {(above ? "above" : "below")} {c} and the difference sits at {c}; no difference value is {(above ? "above" : "below")} {c} ({atC} elements at {c}): a clamp bound computed out of range{wrap}",
                        Counts = new Dictionary<string, double> { ["Differing"] = nd, ["AtBound"] = atC, ["Bound"] = c },
                    });
                    return;
                }
            }
        }
        int atBound = diffIdx.Count(i => r[i] == hi || r[i] == lo);
        if (atBound == nd)
        {
            hints.Add(new QuantHint
            {
                Cause = HintCause.ClampBound, Confidence = nd >= 3 ? 0.93 : 0.6,
                Evidence = $"{nd} elements differ, all where the reference saturates at the range bound {lo} or {hi} ({diffIdx.Count(i => r[i] == hi)} at {hi}); the difference has {diffIdx.Min(i => a[i])}..{diffIdx.Max(i => a[i])} there: it wrapped instead of saturating",
                Counts = new Dictionary<string, double> { ["Differing"] = nd, ["AtBound"] = atBound, ["AtUpper"] = diffIdx.Count(i => r[i] == hi) },
            });
        }
    }

    private static void RoundingCheck(LayerData d, CompareOptions o, long[] r, long[] a, List<int> diffIdx, Func<int, long> zp, List<QuantHint> hints)
    {
        int nd = diffIdx.Count;
        if (!diffIdx.All(i => Math.Abs(a[i] - r[i]) == 1)) return;
        var x = d.Reference;
        if (o.FloatInputs is not null && o.FloatInputs.TryGetValue(d.Layer, out var input) && input.Length == r.Length
            && x.QParams is { IsPerChannel: false } qp)
        {
            double tol = o.MidpointTolerance;
            double Pre(int i) => input.GetDouble(i) / qp.Scale;
            bool Near(int i) { var p = Pre(i); return Math.Abs(p - Math.Floor(p) - 0.5) <= tol; }
            int near = diffIdx.Count(Near);
            int baseNear = Enumerable.Range(0, r.Length).Count(Near);
            int away = diffIdx.Count(i => Math.Sign(a[i] - r[i]) == Math.Sign(Pre(i)));
            double share = near / (double)nd;
            if (share >= 0.9)
            {
                hints.Add(new QuantHint
                {
                    Cause = HintCause.RoundingMode, Confidence = Math.Min(0.97, 0.6 + 0.37 * share * Math.Min(1, nd / 5.0)),
                    Evidence = string.Format(Inv, "{0} elements differ, all by +-1 LSB; {1} of them sit within {2} LSB of a rounding midpoint of the reference's pre-rounding value x/scale (against {3:P0} of all {4} elements); {5} of {0} round away from zero: the rounding mode (half-even vs half-away) or precision of the requantization differs",
                        nd, near, tol, baseNear / (double)r.Length, r.Length, away),
                    Counts = new Dictionary<string, double> { ["Differing"] = nd, ["AtMidpoint"] = near, ["AwayFromZero"] = away, ["AllAtMidpoint"] = baseNear },
                });
                return;
            }
            hints.Add(new QuantHint
            {
                Cause = HintCause.RoundingMode, Confidence = 0.25,
                Evidence = $"{nd} elements differ, all by +-1 LSB, but only {near} of them sit near a rounding midpoint",
                Counts = new Dictionary<string, double> { ["Differing"] = nd, ["AtMidpoint"] = near },
            });
            return;
        }
        int evenR = diffIdx.Count(i => ((r[i] - zp(i)) & 1) == 0);
        int evenA = diffIdx.Count(i => ((a[i] - zp(i)) & 1) == 0);
        int even = Math.Max(evenR, evenA);
        string side = evenR >= evenA ? "reference" : "difference";
        int awayN = diffIdx.Count(i => Math.Sign(a[i] - r[i]) == Math.Sign(r[i] - zp(i)));
        double s = even / (double)nd;
        if (s >= 0.9 && nd >= 4)
            hints.Add(new QuantHint
            {
                Cause = HintCause.RoundingMode, Confidence = Math.Min(0.9, 0.5 + 0.4 * s * Math.Min(1, nd / 8.0)),
                Evidence = $"{nd} elements differ, all by +-1 LSB, and the {side}'s q - zero point is even at {even} of them (the tie signature of round-half-to-even; {awayN} of the other side's values are further from zero): the rounding mode of the requantization differs",
                Counts = new Dictionary<string, double> { ["Differing"] = nd, ["Even"] = even, ["AwayFromZero"] = awayN },
            });
        else
            hints.Add(new QuantHint
            {
                Cause = HintCause.RoundingMode, Confidence = 0.25,
                Evidence = $"{nd} elements differ, all by +-1 LSB; without the pre-rounding values the midpoints cannot be checked (parity {even} of {nd})",
                Counts = new Dictionary<string, double> { ["Differing"] = nd, ["Even"] = even },
            });
    }

    private static void ChannelChecks(LayerData d, CompareOptions o, long[] r, long[] a, List<int> diffIdx, Func<int, long> zp,
        long lo, long hi, List<QuantHint> hints)
    {
        var shape = d.Shape;
        int axis = o.ChannelAxis ?? 1;
        if (shape.Length < 2 || axis >= shape.Length || shape[axis] < 2) return;
        int ch = shape[axis];
        var members = new List<int>[ch];
        for (int c = 0; c < ch; c++) members[c] = new List<int>();
        for (int i = 0; i < r.Length; i++) members[CompareOperand.ChannelOf(i, shape, axis)].Add(i);
        var affected = Enumerable.Range(0, ch).Where(c => members[c].Any(i => a[i] != r[i])).ToList();
        if (affected.Count == 0) return;

        // a constant offset per channel: in each affected channel the differences have one sign and one size (an offset
        // of -0.3 LSB turns about 30% of the channel's values down by one), and channels differ in offset
        var offsets = new List<(int Ch, double Mean, double Rate)>();
        bool allConst = true;
        foreach (var c in affected)
        {
            var ds = members[c].Select(i => a[i] - r[i]).Where(v => v != 0).ToList();
            bool oneSign = ds.All(v => v > 0) || ds.All(v => v < 0);
            bool oneSize = ds.Max(Math.Abs) - ds.Min(Math.Abs) <= 1;
            if (!oneSign || !oneSize) { allConst = false; break; }
            offsets.Add((c, members[c].Average(i => (double)(a[i] - r[i])), ds.Count / (double)members[c].Count));
        }
        if (allConst)
        {
            var rates = Enumerable.Range(0, ch).Select(c => offsets.FirstOrDefault(t => t.Ch == c).Rate).ToList();
            bool signsDiffer = offsets.Select(t => Math.Sign(t.Mean)).Distinct().Count() > 1;
            bool structured = signsDiffer || affected.Count < ch || rates.Max() >= 3 * Math.Max(rates.Min(), 1e-9);
            if (structured && diffIdx.Count >= 8)
            {
                hints.Add(new QuantHint
                {
                    Cause = HintCause.BiasQuantization, Confidence = signsDiffer ? 0.85 : 0.75,
                    Evidence = $"{affected.Count} of {ch} channels (axis {axis}) differ, each by a constant offset (one sign, one size): " +
                        string.Join(", ", offsets.Take(6).Select(t => string.Format(Inv, "channel {0}: {1:+0.00;-0.00} LSB on average ({2:P0} of it off)", t.Ch, t.Mean, t.Rate))) +
                        (offsets.Count > 6 ? ", ..." : "") + ": the bias was quantized differently",
                    Counts = new Dictionary<string, double> { ["Channels"] = ch, ["Affected"] = affected.Count, ["Differing"] = diffIdx.Count },
                });
                return;
            }
            if (!structured && offsets.All(t => t.Rate > 0.9)) return; // one offset everywhere: the ZeroPoint check speaks for it
        }

        // proportional error per channel: d ≈ e_c · (r − zp)
        var fits = new List<(int Ch, double Ratio, double Corr)>();
        foreach (var c in affected)
        {
            double sdv = 0, svv = 0, sd = 0, sv = 0, sdd = 0; int cnt = 0;
            foreach (var i in members[c])
            {
                if (a[i] <= lo || a[i] >= hi || r[i] <= lo || r[i] >= hi) continue;
                double v = r[i] - zp(i), dd = a[i] - r[i];
                sdv += dd * v; svv += v * v; sd += dd; sv += v; sdd += dd * dd; cnt++;
            }
            if (cnt < 3 || svv == 0) continue;
            double cov = sdv / cnt - sd / cnt * (sv / cnt);
            double vd = sdd / cnt - Math.Pow(sd / cnt, 2), vv = svv / cnt - Math.Pow(sv / cnt, 2);
            double corr = vd > 0 && vv > 0 ? cov / Math.Sqrt(vd * vv) : 0;
            double e = sdv / svv;
            int within = members[c].Count(i => Math.Abs(a[i] - r[i] - e * (r[i] - zp(i))) <= 1.0);
            if (within >= 0.85 * members[c].Count) fits.Add((c, e, corr));
        }
        var proportional = fits.Where(f => f.Corr >= 0.6).ToList();
        if (proportional.Count > 0 && proportional.Count >= 0.8 * affected.Count)
        {
            double corr = proportional.Average(f => f.Corr);
            bool uniform = affected.Count == ch && proportional.Max(f => f.Ratio) - proportional.Min(f => f.Ratio) < 0.2 * Math.Abs(proportional.Average(f => f.Ratio));
            hints.Add(new QuantHint
            {
                Cause = HintCause.PerChannelScale, Confidence = Math.Min(0.92, 0.45 + 0.45 * corr) * (uniform ? 0.8 : 1),
                Evidence = $"{affected.Count} of {ch} channels (axis {axis}) differ, each in proportion to the value (q - zero point): " +
                    string.Join(", ", proportional.Take(6).Select(f => string.Format(Inv, "channel {0}: {1:+0.0%;-0.0%}, correlation {2:F2}", f.Ch, f.Ratio, f.Corr))) +
                    (proportional.Count > 6 ? ", ..." : "") + (uniform ? ": the same ratio in every channel, so perhaps the output scale" : ": a per-channel scale differs"),
                Counts = new Dictionary<string, double> { ["Channels"] = ch, ["Affected"] = affected.Count, ["Proportional"] = proportional.Count },
            });
        }
    }

    private static void SaturationCheck(long[] r, long[] a, List<int> diffIdx, Func<int, long> zp, List<QuantHint> hints)
    {
        int nd = diffIdx.Count, n = r.Length;
        if (nd < 3) return;
        var mags = new long[n];
        for (int i = 0; i < n; i++) mags[i] = Math.Abs(r[i] - zp(i));
        var sorted = (long[])mags.Clone();
        Array.Sort(sorted);
        long p75 = sorted[(int)(0.75 * (n - 1))];
        var dm = diffIdx.Select(i => mags[i]).OrderBy(v => v).ToList();
        long median = dm[dm.Count / 2], min = dm[0];
        long p50 = sorted[(n - 1) / 2];
        int high = dm.Count(v => v >= p50);
        int toward = diffIdx.Count(i => Math.Sign(a[i] - r[i]) == -Math.Sign(r[i] - zp(i)));
        double share = high / (double)nd, towardShare = toward / (double)nd;
        var (lo, hi) = (r.Min(), r.Max());
        bool atRangeBounds = diffIdx.All(i => r[i] == lo || r[i] == hi);
        if (median >= p75 && share >= 0.9 && towardShare >= 0.9 && !atRangeBounds)
        {
            int exactAbove = Enumerable.Range(0, n).Count(i => mags[i] > median && a[i] == r[i]);
            hints.Add(new QuantHint
            {
                Cause = HintCause.Int16Saturation, Confidence = Math.Min(0.9, 0.45 * share + 0.45 * towardShare),
                Evidence = $"{nd} of {n} elements differ, {high} of them in the larger half of |q - zero point| (>= {p50}), {toward} pulled toward the zero point; the median differing magnitude {median} is above the 75th percentile {p75}, none below {min}: errors appear only at large accumulators, the signature of int16 saturation (product pairs or accumulator; reduce_range not honoured)",
                Counts = new Dictionary<string, double> { ["Differing"] = nd, ["AtLargeMagnitude"] = high, ["TowardZeroPoint"] = toward, ["ExactAboveMedian"] = exactAbove },
            });
        }
    }

    private static long? Mode(IEnumerable<long> values)
    {
        var g = values.GroupBy(v => v).OrderByDescending(x => x.Count()).ThenBy(x => Math.Abs(x.Key)).FirstOrDefault();
        return g?.Key;
    }
}
