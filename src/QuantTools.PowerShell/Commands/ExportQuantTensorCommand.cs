using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>Writes piped tensors to one .npy, .npz or .safetensors file.</summary>
[Cmdlet(VerbsData.Export, "QuantTensor", SupportsShouldProcess = true, DefaultParameterSetName = PathSet)]
[OutputType(typeof(FileInfo))]
public sealed class ExportQuantTensorCommand : QuantCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath")]
    public string LiteralPath { get; set; } = "";

    [Parameter(Mandatory = true, ValueFromPipeline = true)]
    public object[] InputObject { get; set; } = [];

    /// <summary>Names for the tensors, in input order; otherwise each tensor's Name property, else tensor0, tensor1, ...</summary>
    [Parameter(Position = 1)]
    public string[]? Name { get; set; }

    /// <summary>Deflate the entries of an .npz file.</summary>
    [Parameter]
    public SwitchParameter Compress { get; set; }

    /// <summary>Overwrite an existing file.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Emit the written file.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private readonly List<(string Name, object Value)> _items = new();

    protected override void ProcessRecord()
    {
        foreach (var item in InputObject)
        {
            TryItem(item, () =>
            {
                var v = TensorArgument.Unwrap(item);
                object value = v is QTensor q ? q : TensorArgument.ToTensor(item);
                string name = Name is not null && _items.Count < Name.Length ? Name[_items.Count]
                    : TensorArgument.NameOf(item) ?? $"tensor{_items.Count}";
                if (_items.Any(i => i.Name == name))
                    throw new QuantToolsException(ErrorCode.InvalidArgument, $"two tensors are named '{name}'; use -Name to name them");
                _items.Add((name, value));
            });
        }
    }

    protected override void EndProcessing()
    {
        if (_items.Count == 0) return;
        var path = ParameterSetName == LiteralPathSet
            ? GetUnresolvedProviderPathFromPSPath(LiteralPath)
            : GetUnresolvedProviderPathFromPSPath(Path);
        if (File.Exists(path) && !Force)
        {
            WriteError(new ErrorRecord(new IOException($"'{path}' exists; use -Force to overwrite it"),
                "QuantTools.FileExists", ErrorCategory.ResourceExists, path));
            return;
        }
        if (!ShouldProcess(path, $"Write {_items.Count} tensor(s)")) return;
        var ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
        OrThrow<object?>(path, () =>
        {
            QTensorFile.Write(path, _items, new TensorFileWriteOptions
            {
                Compress = Compress,
                QParamsDropped = name => WriteWarning($"{ext} files cannot hold qparams: '{name}' is written as its int_repr only; use .safetensors to keep scale and zero point"),
            });
            return null;
        });
        if (PassThru) WriteObject(new FileInfo(path));
    }
}
