@{
    Synopsis    = 'Joins the output folders of Invoke-QuantPipeline shards into one set of reports, the same a single run gives.'
    Description = @'
Reads the job results of each folder (its results.json, or jobs/*.json where the run was killed before writing it), copies the job result files and artifacts into -OutputPath/jobs, and writes results.json, results.csv, junit.xml and summary.md there, ordered by job index as a single run orders them. A job found in two folders with different results is an error (shards must come from the same -Shard i/n split).

Each -Shard i/n run records itself in its folder (shard.json: i, n, the pipeline's job count and the shard's job ids). Before anything is copied, Merge-QuantReport checks that the folders are one complete split: every shard 1..n exactly once, all of the same n, each with a result for every one of its jobs. A missing or unfinished shard is an error that names it (with -AllowPartial: a warning, and the report says INCOMPLETE, never PASSED); a shard given twice, shards of different splits, or a mix of sharded and unsharded folders is always an error. The summary's Shards property says which shards the report holds.
'@
    Parameters  = @{
        Path             = 'The output folders of the shards (wildcards allowed).'
        OutputPath       = 'The folder for the merged job results and reports (created when missing).'
        PassThru         = 'Emit every merged job result instead of the summary.'
        AllowPartial     = 'Merge even when shards are missing or did not finish: each gap becomes a warning, and summary.md and the summary''s Shards say INCOMPLETE. Without it such a merge is an error.'
        FailOnRegression = 'End with a terminating error when any merged job failed an assertion or had an error (so the CI step fails). On by default when the CI environment variable is set.'
    }
    Inputs      = @(@{ Type = 'System.String'; Description = 'Folder paths (also by property name, e.g. from Get-ChildItem -Directory).' })
    Outputs     = @(
        @{ Type = 'QuantTools.Core.Pipelines.PipelineSummary'; Description = 'Jobs, Passed, Failed, Errors, Assertions, AssertionsFailed, OutputPath, Shards (which shards were merged, complete or PARTIAL).' }
        @{ Type = 'QuantTools.Core.Pipelines.PipelineJobResult'; Description = 'With -PassThru: every job result, in job order.' }
    )
    Examples    = @(
        @{
            Title   = 'Merge four shards'
            Code    = 'Merge-QuantReport ./shard1, ./shard2, ./shard3, ./shard4 -OutputPath ./merged'
            Remarks = './merged/results.json equals what one run of every job writes, apart from durations and run ids.'
        }
        @{
            Title   = 'Merge every downloaded CI artifact folder'
            Code    = 'Get-ChildItem ./artifacts -Directory -Filter shard-* | Merge-QuantReport -OutputPath ./merged -FailOnRegression'
            Remarks = 'Fails the step when any job failed.'
        }
    )
    Links       = @('Invoke-QuantPipeline')
}
