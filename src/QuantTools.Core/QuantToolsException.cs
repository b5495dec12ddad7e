namespace QuantTools.Core;

/// <summary>Stable error codes; the PowerShell layer maps each to an ErrorId and ErrorCategory.</summary>
public enum ErrorCode
{
    InvalidArgument,
    InvalidQParams,
    ShapeMismatch,
    UnsupportedDType,
    UnsupportedFormat,
    CorruptFile,
    UnsupportedOperator,
    NotSupported,
    IoError,
}

/// <summary>The one exception type Core throws for bad input. <see cref="Target"/> names the file, tensor or layer.</summary>
public sealed class QuantToolsException : Exception
{
    public ErrorCode Code { get; }
    public string? Target { get; }

    public QuantToolsException(ErrorCode code, string message, string? target = null, Exception? inner = null)
        : base(target is null ? message : $"{target}: {message}", inner)
    {
        Code = code;
        Target = target;
    }
}
