using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution;

namespace QuantTools.Core.Tests.Kernels;

/// <summary>The thread budget belongs to a run (ExecutionOptions / Parallelism.Limit), not to the process.</summary>
public class ParallelismTests
{
    [Fact]
    public void LimitScopesNestAndRestore()
    {
        int outside = Parallelism.MaxThreads;
        using (Parallelism.Limit(3))
        {
            Assert.Equal(3, Parallelism.MaxThreads);
            using (Parallelism.Limit(1)) Assert.Equal(1, Parallelism.MaxThreads);
            using (Parallelism.Limit(null)) Assert.Equal(3, Parallelism.MaxThreads);
            Assert.Equal(3, Parallelism.MaxThreads);
        }
        Assert.Equal(outside, Parallelism.MaxThreads);
        var e = Assert.Throws<QuantToolsException>(() => Parallelism.Limit(0));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("at least 1", e.Message);
    }

    [Fact]
    public void RunsSideBySideKeepTheirOwnBudget()
    {
        // two flows with different budgets, interleaved by a barrier: each always sees its own (a process-wide
        // static would let the last writer win), also inside the Parallel.For workers its kernels start
        using var barrier = new Barrier(2);
        var seen = new System.Collections.Concurrent.ConcurrentBag<(int Want, int Got)>();
        void Flow(int budget)
        {
            using var _ = Parallelism.Limit(budget);
            for (int i = 0; i < 20; i++)
            {
                barrier.SignalAndWait();
                seen.Add((budget, Parallelism.MaxThreads));
                Parallel.For(0, 4, Parallelism.Options, _ => seen.Add((budget, Parallelism.MaxThreads)));
            }
        }
        var a = Task.Factory.StartNew(() => Flow(1), TaskCreationOptions.LongRunning);
        var b = Task.Factory.StartNew(() => Flow(5), TaskCreationOptions.LongRunning);
        Task.WaitAll(a, b);
        Assert.Equal(2 * 20 * 5, seen.Count);
        Assert.All(seen, s => Assert.Equal(s.Want, s.Got));
    }

    [Fact]
    public void ExecutorRunsUnderItsRunOptionsAndGivesTheSameResult()
    {
        var ex = ModelExecutor.Load(Fixtures.Core("models", "seed_convnet.torchscript.pt"), QEngine.X86);
        using var g = new QuantTools.Core.Conformance.GoldenFile(Fixtures.Core("models", "seed_convnet.json"));
        var input = g.Tensors.Get("input");
        int outside = Parallelism.MaxThreads;
        var budgets = new HashSet<int>();
        ex.NodeTimer = (_, _) => budgets.Add(Parallelism.MaxThreads); // called inside the run, after every node
        var one = ex.Run(input, options: new ExecutionOptions { MaxThreads = 1 });
        Assert.Equal([1], budgets);
        budgets.Clear();
        var two = ex.Run(input, options: new ExecutionOptions { MaxThreads = 2 });
        Assert.Equal([2], budgets);
        budgets.Clear();
        ex.Run(input);
        Assert.Equal([outside], budgets);
        Assert.Equal(outside, Parallelism.MaxThreads);
        Assert.Equal("", QuantTools.Core.Conformance.OpsCases.CompareF(one.Output, two.Output));
        Assert.Equal("", QuantTools.Core.Conformance.OpsCases.CompareF(g.Tensors.Get("output"), one.Output));
    }
}
