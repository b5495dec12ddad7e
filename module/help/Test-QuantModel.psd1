@{
    Synopsis    = 'Points out quantization parameters in a model that will hurt when it is deployed outside PyTorch.'
    Description = @'
Checks every layer and emits one finding per problem, with Severity (Info, Warning, Error), Layer, Rule, Message and Values (the numbers behind it):

ClampBoundOutOfRange: a ReLU6, Hardtanh or clamp bound that the input qparams cannot represent. PyTorch quantizes the bound with the input scale and zero point and saturates it, so for input scale 0.0197 and zero point 0, 6.0 is 303.9 steps and ReLU6 acts as ReLU; a backend that computes the bound in uint8 wraps it (304 becomes 48) and clips valid activations.
ZeroPointOutOfRange, DegenerateScale, ScaleAtEps: zero points outside the dtype, scales that are zero, NaN or infinite, scales at the observer's eps (an empty observed range).
ReduceRangeAdvice: activations using the full 0..255 range on an engine whose non-VNNI kernels saturate pairs of u8 x s8 products to int16 (x86, fbgemm, fbgemm-avx2), and the reverse: 7-bit activations on qnnpack or onednn, which have no int16 stage.
PerChannelScaleSpread, DeadChannel, WeightsSaturated, BiasOverflow: per-channel weight scales spread over more than three orders of magnitude, output channels whose weights are all zero, channels with more than 1% of their weights at the int8 limits, and biases whose int32 form (bias / (s_in * s_w)) overflows.
NotChecked (Info): what the file hides from the rules. A state_dict holds no tensors for parameter-free modules (ReLU6, Hardtanh, clamp, pools), so they are listed by name (from the file's module metadata) as not checked, and a fused ConvReLU2d cannot be told from a Conv2d. Lint the TorchScript form, or pass -Architecture, to check them.

For .onnx files the rules judge what ONNX Runtime's CPU provider will run after its default graph rewrites: FloatOpBetweenQdq (a Conv, Gemm or MatMul that ORT leaves in float between DQ and Q, e.g. int8 activations on x86), U8S8SaturationRisk (int8 weights outside -64..64 with uint8 activations: MLAS's non-VNNI kernels saturate product pairs to int16), PerChannelWeightZeroPoints (QLinearConv refuses differing weight zero points), BiasScaleMismatch (an int32 bias whose DQ scale is not s_x * s_w), DegenerateScale, and GlobalAveragePoolRange (a QLinearGlobalAveragePool multiplier ORT refuses).
'@
    Parameters  = @{
        Path            = 'Checkpoint files or ONNX models (.onnx). Wildcards are allowed.'
        LiteralPath     = 'Checkpoint files, without wildcard expansion.'
        Model           = 'A model from Import-QuantModel.'
        Engine          = 'The engine the model will run on: x86 (default), fbgemm, qnnpack, onednn or fbgemm-avx2 (fbgemm without VNNI). The reduce_range advice depends on it.'
        Architecture    = 'For a state_dict: an architecture file (see examples/architectures) or a built-in architecture name (torchvision:<name>) that names the parameter-free modules and the wiring. Then ReLU6 / Hardtanh bounds are checked at their exact input qparams, as for a TorchScript file.'
        MinimumSeverity = 'Only emit findings at or above this severity: Info (default), Warning or Error.'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Models.QuantModel'; Description = 'Models from Import-QuantModel.' })
    Outputs     = @(@{ Type = 'QuantTools.Core.Models.Finding'; Description = 'Severity, Layer, Rule, Message, Values.' })
    Examples    = @(
        @{
            Title   = 'The ReLU6 bound of the forum thread''s model'
            Code    = 'Test-QuantModel -Path ./tests/fixtures/golden/pytorch-2.11/core/models/relu6_eager.torchscript.pt'
            Remarks = 'Reports that relu6''s bound 6.0 lies beyond quint8 at conv1''s output scale, with the steps, the saturated and the uint8-wrapped value.'
        }
        @{
            Title   = 'Fail a build on errors'
            Code    = 'if (Test-QuantModel ./model.pt -MinimumSeverity Error) { throw "quantization lint failed" }'
            Remarks = 'Only Error findings are emitted, so any output fails the step.'
        }
    )
    Links       = @('Get-QParams', 'Import-QuantModel')
}
