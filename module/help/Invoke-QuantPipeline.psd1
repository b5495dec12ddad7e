@{
    Synopsis    = 'Runs a YAML pipeline of quantization jobs (qparams, lint, calibrate, quantize, run, compare, assert) over many checkpoints, in parallel, for CI.'
    Description = @'
The pipeline file has jobs; a job names models (paths or globs, relative to the YAML file), inputs (tensor files, globs, or seeded random tensors), engines, an architecture file for eager state_dicts, and steps: qparams (the per-layer table), lint (Test-QuantModel findings), calibrate (a PyTorch observer over the inputs, with PyTorch's names and arguments), quantize, run (the model under each engine, optionally capturing every layer), compare (the run's output and layers against another engine or a golden file: SQNR, MSE, errors, cosine, LSB, the first diverging layer and its likely cause, per layer in results.json) and assert (thresholds: lint counts, a layer's qparams, calibrated qparams, quantization error, outputs against golden tensor files in LSB or bit for bit, compare metrics per layer or worst over layers). Top-level variables (${name}) and a job matrix (e.g. engine x model) expand jobs deterministically. The README's Pipelines section documents the schema.

The whole file is read and checked before anything runs: unknown keys, wrong types, missing files, tensor names (inputs' tensors, an assert's golden tensor) that the files do not hold, and steps that lack what they need are reported together, each with file:line:column and what was expected. -Validate stops there and emits the expanded jobs.

Jobs run in parallel in this process (-ThrottleLimit at a time); progress shows jobs done, running and failed. Each result streams out as it finishes (Job, Status Passed/Failed/Error, Duration, Steps, Failures naming the job, step, layer and metric) and is written at once to OutputPath/jobs/<job>.json (temp file and rename, so a kill loses nothing finished). A job whose checkpoint is corrupt, whose model has an unsupported op or whose input is missing ends with status Error and its message; the other jobs finish. At the end OutputPath holds results.json, results.csv, junit.xml (one test case per assertion) and summary.md. Ctrl+C stops the running jobs; finished results and the reports of finished jobs stay.

-Resume skips jobs whose result file exists and whose recorded input hash (the job's definition after substitution plus the contents of its models, architecture, inputs and golden files) still matches. -Shard i/n runs one of n disjoint parts (jobs sorted by id, every n-th one), for CI matrix jobs; Merge-QuantReport joins the parts' folders into the reports one run gives.

-UpdateGolden rewrites the golden files that the jobs' assert and compare steps read, from the current run, in the format they were read (a golden model JSON's companion .safetensors and its scale / zero point records, a .safetensors file's output and act/<layer>/int tensors, a folder's <layer>.npy files; input and float_output stay). It lists the files and asks for confirmation first (-Force skips the question, -WhatIf only lists them); each rewritten file is reported as it is written and in the job result's GoldenWritten. Jobs then compare against the rewritten files, so they pass unless the run itself fails.
'@
    Parameters  = @{
        Path             = 'The pipeline YAML file.'
        ThrottleLimit    = 'How many jobs run at the same time in this process (default: the number of cores). The kernels of each job share the cores; results do not depend on it.'
        Shard            = 'i/n: run only part i of n (1-based). Jobs are sorted by id and every n-th one is taken, so the parts are disjoint, cover every job and differ in size by at most one.'
        Resume           = 'Skip jobs whose result file in -OutputPath exists and records the same input hash (the same job definition and the same file contents); their recorded results are emitted again with Resumed = True.'
        OutputPath       = 'The folder for jobs/<job>.json, job artifacts (the outputs a job names) and the reports (default: ./pipeline-results).'
        Validate         = 'Only read and check the file (every problem with file:line:column, tensor names inside input and golden files included) and emit the expanded jobs; nothing runs.'
        UpdateGolden     = 'Rewrite the golden files the selected jobs'' assert and compare steps read from this run (outputs and every captured layer, in the files'' own format), after confirmation. Does not go with -Resume.'
        Force            = 'With -UpdateGolden: rewrite the golden files without asking.'
        FailOnRegression = 'End with a terminating error when any job failed an assertion or had an error, so pwsh -File exits non-zero. On by default when the CI environment variable is set (GitHub Actions, Azure Pipelines and most CI systems set it); -FailOnRegression:$false turns it off.'
    }
    Inputs      = @(@{ Type = 'System.String'; Description = 'The pipeline file path (also by property name, e.g. from Get-ChildItem).' })
    Outputs     = @(
        @{ Type = 'QuantTools.Core.Pipelines.PipelineJobResult'; Description = 'One per job: Job (its id), Name, Index, Model, Engines, Matrix, Status (Passed, Failed, Error), Duration, Started, Steps (Step, Status, Duration, Metrics, Assertions, Output, Layers: a compare step''s per-layer rows), Failures (Job, Step, Layer, Metric, Engine, Expected, Actual, Message), Error, InputHash, RunId, Resumed, GoldenWritten.' }
        @{ Type = 'QuantTools.Core.Pipelines.PipelineJob'; Description = 'With -Validate: the expanded jobs (Id, Name, Index, Model, Engines, Matrix, Inputs, Steps, Outputs).' }
    )
    Notes       = 'Relative paths in the YAML file are relative to the file''s folder. Results are identical whatever -ThrottleLimit and -Shard are; only durations and run ids differ.'
    Examples    = @(
        @{
            Title   = 'Run the example pipeline on the bundled golden models'
            Code    = 'Invoke-QuantPipeline ./examples/pipelines/golden-models.yaml -OutputPath ./out | Format-Table'
            Remarks = 'One row per job; ./out holds results.json, results.csv, junit.xml, summary.md and jobs/<job>.json.'
        }
        @{
            Title   = 'Check a pipeline file without running it'
            Code    = 'Invoke-QuantPipeline ./jobs.yaml -Validate'
            Remarks = 'Every problem is reported at once with file:line:column; a valid file lists its expanded jobs.'
        }
        @{
            Title   = 'One CI matrix leg of four, then the merge'
            Code    = 'Invoke-QuantPipeline ./jobs.yaml -Shard 2/4 -OutputPath ./shard2 -FailOnRegression:$false; Merge-QuantReport ./shard1, ./shard2, ./shard3, ./shard4 -OutputPath ./merged -FailOnRegression'
            Remarks = 'Each leg runs its part; the merge writes the reports a single run gives and fails the build on any failed assertion.'
        }
        @{
            Title   = 'Accept the current results as the new golden files'
            Code    = 'Invoke-QuantPipeline ./jobs.yaml -OutputPath ./out -UpdateGolden -Force'
            Remarks = 'Rewrites the golden files the jobs compare with from this run and lists each file written; without -Force it asks first.'
        }
        @{
            Title   = 'Pick up after a crash'
            Code    = 'Invoke-QuantPipeline ./jobs.yaml -OutputPath ./out -Resume'
            Remarks = 'Jobs with a matching result in ./out are not run again; the others run.'
        }
    )
    Links       = @('Merge-QuantReport', 'Invoke-QuantModel', 'Get-QParams', 'Test-QuantModel')
}
