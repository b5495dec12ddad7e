using QuantTools.Core.Pipelines;

namespace QuantTools.Core.Tests.Pipelines;

public class PipelinePolicyTests
{
    [Theory]
    [InlineData(null, false)]
    [InlineData("", false)]
    [InlineData("false", false)]
    [InlineData("FALSE", false)]
    [InlineData("0", false)]
    [InlineData("true", true)]
    [InlineData("1", true)]
    [InlineData("yes", true)]
    public void CiVariable(string? value, bool ci) => Assert.Equal(ci, PipelinePolicy.IsCi(value));

    [Theory]
    [InlineData(2, 16, 2, 1)]   // two jobs at once on two cores: one thread each
    [InlineData(1, 16, 2, 2)]   // one job at a time gets every core
    [InlineData(8, 3, 16, 5)]   // only 3 jobs: 16 / 3 threads each
    [InlineData(4, 0, 2, 2)]    // no jobs: still at least one thread, never divide by zero
    [InlineData(64, 64, 2, 1)]
    public void KernelThreadsShareTheCores(int throttle, int jobs, int cores, int expected) =>
        Assert.Equal(expected, PipelinePolicy.KernelThreadsPerJob(throttle, jobs, cores));

    [Fact]
    public void UpdateGoldenRefusesResume()
    {
        var e = Assert.Throws<QuantToolsException>(() => PipelinePolicy.CheckOptions(updateGolden: true, resume: true));
        Assert.Contains("-Resume", e.Message);
        PipelinePolicy.CheckOptions(updateGolden: true, resume: false);
        PipelinePolicy.CheckOptions(updateGolden: false, resume: true);
    }
}
