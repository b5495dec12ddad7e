@{
    Synopsis    = 'Runs a folder of PyTorch golden cases and reports, per case or per category, whether QuantTools reproduces them exactly.'
    Description = @'
Finds the golden JSON files (observers.json, quantize.json, ops.json, models/*.json, engines/*.json, onnx/onnx.json) below each folder, runs every case with QuantTools' own arithmetic and compares bit for bit: scales as float32 bits, zero points and integers exactly.

Each case becomes one object with Id, Category (observers, quantize, ops, models, onnx), Engine, Status (Passed, Failed, NotRun) and Detail (the first mismatch, or why a case was not run). Categories this version cannot run yet are reported as NotRun, never as Passed. PyTorch's own refusals recorded in a file's "errors" list are cases too: they pass when QuantTools refuses the same input.
'@
    Parameters  = @{
        Path        = 'Folder(s) holding golden data laid out as the golden README describes. Wildcards are allowed. A single golden .json file works too.'
        LiteralPath = 'Like -Path, without wildcard expansion.'
        Category    = 'Run only these categories: observers, quantize, ops, models, onnx.'
        Summary     = 'Emit one object per category with Passed, Failed and NotRun counts instead of one object per case.'
    }
    Inputs      = @(@{ Type = 'System.String'; Description = 'Folder paths, by value or by the Path property.' })
    Outputs     = @(
        @{ Type = 'QuantTools.Core.Conformance.CaseResult'; Description = 'One per case: Id, Category, Engine, Status, Detail.' }
        @{ Type = 'QuantTools.Core.Conformance.CategorySummary'; Description = 'With -Summary: Category, Passed, Failed, NotRun, Total.' }
    )
    Notes       = 'Scripts may rely on the property names Id, Category, Engine, Status, Detail, Passed, Failed and NotRun.'
    Examples    = @(
        @{
            Title   = 'Summary of a golden folder'
            Code    = 'Test-QuantConformance -Path ./tests/fixtures/golden/pytorch-2.11/core -Summary'
            Remarks = 'Prints one row per category with the number of cases passed, failed and not run.'
        }
        @{
            Title   = 'List the failures with their first mismatch'
            Code    = 'Test-QuantConformance ./golden -Category observers, quantize | Where-Object Status -eq Failed | Format-List Id, Detail'
            Remarks = 'Detail names the first element that differs, with the expected and the actual value.'
        }
    )
    Links       = @('Get-QParams', 'ConvertTo-Quantized')
}
