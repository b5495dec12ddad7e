using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models;

/// <summary>
/// One row of Get-QParams -Path: a layer's activation and weight qparams and, for conv and linear, the effective
/// requantization multiplier per output channel <c>M = s_in · s_w / s_out</c> with its fixed-point form.
/// Property names are relied on by scripts: keep them.
/// </summary>
public sealed class LayerQParams
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    public double? InputScale { get; init; }
    public long? InputZeroPoint { get; init; }
    /// <summary>The layer whose output feeds this one (from the graph, or the previous layer in order).</summary>
    public string? InputLayer { get; init; }
    public double? OutputScale { get; init; }
    public long? OutputZeroPoint { get; init; }
    public string? WeightDtype { get; init; }
    public string? WeightQScheme { get; init; }
    public int? WeightAxis { get; init; }
    public double[]? WeightScales { get; init; }
    public long[]? WeightZeroPoints { get; init; }
    public double? WeightScaleMin { get; init; }
    public double? WeightScaleMax { get; init; }
    /// <summary>max / min of the per-channel weight scales (1 for per-tensor).</summary>
    public double? WeightScaleSpread { get; init; }
    public bool HasBias { get; init; }
    public double[]? Multipliers { get; init; }
    public int[]? FixedPointMultipliers { get; init; }
    public int[]? Shifts { get; init; }

    /// <summary>Builds the rows for a model: output qparams flow forward to the next layer's input.</summary>
    public static IReadOnlyList<LayerQParams> For(QuantModel model)
    {
        var rows = new List<LayerQParams>();
        var outputs = new Dictionary<string, (double Scale, long Zp)?>(StringComparer.Ordinal);
        (double Scale, long Zp)? current = null;
        string? previous = null;
        foreach (var layer in model.Layers)
        {
            string? inputName = layer.Inputs is { Count: > 0 } ins ? ins[0] : previous;
            (double Scale, long Zp)? input = inputName is not null && outputs.TryGetValue(inputName, out var o) ? o : current;
            if (layer.Kind is "Quantize" or "FakeQuantize" or "Observer" or "DynamicLinear") input = layer.Kind == "DynamicLinear" ? null : input;
            (double Scale, long Zp)? output = layer.OutputScale is { } s && layer.OutputZeroPoint is { } z ? (s, z)
                : PassesQParamsThrough(layer.Kind) ? input : null;

            var wq = layer.Weight?.QParams ?? layer.WeightQParams;
            double[]? mult = null;
            int[]? fixedM = null, shifts = null;
            if (layer.Weight is not null && wq is not null && input is { } inp && output is { } outp && layer.Kind != "DynamicLinear")
            {
                int n = wq.Scales.Length;
                mult = new double[n];
                fixedM = new int[n];
                shifts = new int[n];
                for (int c = 0; c < n; c++)
                {
                    mult[c] = inp.Scale * wq.Scales[c] / outp.Scale;
                    if (fixedM is not null && shifts is not null && double.IsFinite(mult[c]) && mult[c] >= 0)
                        (fixedM[c], shifts[c]) = FixedPointMultiplier.From(mult[c]);
                    else fixedM = shifts = null; // a degenerate scale (reported by the linter) has no fixed-point form
                }
            }
            double[]? ws = wq?.Scales;
            rows.Add(new LayerQParams
            {
                Name = layer.Name,
                Kind = layer.Kind,
                InputScale = layer.Kind is "Quantize" or "FakeQuantize" or "Observer" ? null : input?.Scale,
                InputZeroPoint = layer.Kind is "Quantize" or "FakeQuantize" or "Observer" ? null : input?.Zp,
                InputLayer = layer.Kind is "Quantize" ? null : inputName,
                OutputScale = output?.Scale,
                OutputZeroPoint = output?.Zp,
                WeightDtype = wq?.DType.TorchName(),
                WeightQScheme = wq?.QScheme.TorchName(),
                WeightAxis = wq is { IsPerChannel: true } ? wq.Axis : null,
                WeightScales = ws,
                WeightZeroPoints = wq?.ZeroPoints,
                WeightScaleMin = ws?.Min(),
                WeightScaleMax = ws?.Max(),
                WeightScaleSpread = ws is { Length: > 0 } && ws.Min() > 0 ? ws.Max() / ws.Min() : null,
                HasBias = layer.Bias is not null,
                Multipliers = mult,
                FixedPointMultipliers = fixedM,
                Shifts = shifts,
            });
            outputs[layer.Name] = output;
            if (output is not null || layer.Kind == "DeQuantize") current = layer.Kind == "DeQuantize" ? null : output;
            previous = layer.Name;
        }
        return rows;
    }

    /// <summary>Modules whose quantized output keeps the input's qparams.</summary>
    public static bool PassesQParamsThrough(string kind) => kind is "ReLU" or "ReLU6" or "Hardtanh" or "Clamp" or "MaxPool2d"
        or "MaxPool1d" or "AdaptiveAvgPool2d" or "AvgPool2d" or "Flatten" or "Identity" or "Dropout" or "ChannelShuffle"
        or "Upsample" or "UpsamplingNearest2d" or "UpsamplingBilinear2d";
}
