@{
    Synopsis    = 'Joins the output folders of Invoke-QuantPipeline shards into one set of reports, the same a single run gives.'
    Description = @'
Reads the job results of each folder (its results.json, or jobs/*.json where the run was killed before writing it), copies the job result files and artifacts into -OutputPath/jobs, and writes results.json, results.csv, junit.xml and summary.md there, ordered by job index as a single run orders them. A job found in two folders with different results is an error (shards must come from the same -Shard i/n split).
'@
    Parameters  = @{
        Path             = 'The output folders of the shards (wildcards allowed).'
        OutputPath       = 'The folder for the merged job results and reports (created when missing).'
        PassThru         = 'Emit every merged job result instead of the summary.'
        FailOnRegression = 'End with a terminating error when any merged job failed an assertion or had an error (so the CI step fails). On by default when the CI environment variable is set.'
    }
    Inputs      = @(@{ Type = 'System.String'; Description = 'Folder paths (also by property name, e.g. from Get-ChildItem -Directory).' })
    Outputs     = @(
        @{ Type = 'QuantTools.Core.Pipelines.PipelineSummary'; Description = 'Jobs, Passed, Failed, Errors, Assertions, AssertionsFailed, OutputPath.' }
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
