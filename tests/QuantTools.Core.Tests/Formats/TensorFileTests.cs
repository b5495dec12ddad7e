using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;
using static QuantTools.Core.Tests.Formats.FormatTestUtil;

namespace QuantTools.Core.Tests.Formats;

public class TensorFileTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Theory]
    [InlineData("m.npz", false)]
    [InlineData("m.npz", true)]
    [InlineData("m.safetensors", false)]
    [InlineData("M.SAFETENSORS", false)]
    public void WritesAndReadsByExtension(string file, bool compress)
    {
        var tensors = new List<(string Name, Tensor Tensor)>
        {
            ("w", Sample(DType.Float32, [3, 2])), ("b", Sample(DType.Int32, [2])),
        };
        var p = _tmp.File(file);
        TensorFile.Write(p, tensors, compress);
        var all = TensorFile.ReadAll(p);
        Assert.Equal(2, all.Count);
        foreach (var (n, t) in tensors)
        {
            AssertSameTensor(t, all.Single(x => x.Name == n).Tensor);
            AssertSameTensor(t, TensorFile.Read(p, n));
        }
        var ex = AssertFails(ErrorCode.InvalidArgument, p, () => TensorFile.Read(p));
        Assert.Contains("w", ex.Message);
        AssertFails(ErrorCode.InvalidArgument, p, () => TensorFile.Read(p, "nope"));
    }

    [Fact]
    public void NpyIsOneTensorNamedAfterTheStem()
    {
        var p = _tmp.File("layer1.weight.npy");
        var t = Sample(DType.Float64, [2, 2]);
        TensorFile.Write(p, [("ignored", t)]);
        var all = TensorFile.ReadAll(p);
        Assert.Equal("layer1.weight", Assert.Single(all).Name);
        AssertSameTensor(t, TensorFile.Read(p));
        var two = _tmp.File("two.npy");
        AssertFails(ErrorCode.InvalidArgument, two, () => TensorFile.Write(two, [("a", t), ("b", t)]));
    }

    [Theory]
    [InlineData("model.pt")]
    [InlineData("model")]
    [InlineData("data.npy.bak")]
    public void UnknownExtensionsNameTheSupportedOnes(string file)
    {
        var p = _tmp.Write(file, [1, 2, 3]);
        var ex = AssertFails(ErrorCode.UnsupportedFormat, p, () => TensorFile.ReadAll(p));
        Assert.Contains(".npy, .npz, .safetensors", ex.Message);
        AssertFails(ErrorCode.UnsupportedFormat, p, () => TensorFile.Write(p, [("a", Sample(DType.Float32, [1]))]));
    }

    [Fact]
    public void ReadsTheCommittedFixtures()
    {
        Assert.Equal(6, TensorFile.ReadAll(Fixture("small.safetensors")).Count);
        Assert.Equal(3, TensorFile.ReadAll(Fixture("deflated.npz")).Count);
        Assert.Equal("f4_c_v1", TensorFile.ReadAll(Fixture("f4_c_v1.npy"))[0].Name);
    }

    [Fact]
    public void MissingFileIsAnIoErrorForEveryFormat()
    {
        foreach (var ext in new[] { ".npy", ".npz", ".safetensors" })
        {
            var p = _tmp.File("missing" + ext);
            AssertFails(ErrorCode.IoError, p, () => TensorFile.ReadAll(p));
        }
    }
}
