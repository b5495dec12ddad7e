namespace QuantTools.Core.Conformance;

/// <summary>The one place that lists which golden categories this build can run.</summary>
public static class CategoryRegistry
{
    public static IEnumerable<IConformanceCategory> All()
    {
        yield return new ObserverCases();
        yield return new QuantizeCases();
        yield return new OpsCases();
        yield return new ModelCases();
        yield return new OnnxCases();
    }
}
