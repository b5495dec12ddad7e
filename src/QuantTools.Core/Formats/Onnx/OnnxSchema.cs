namespace QuantTools.Core.Formats.Onnx;

/// <summary>
/// The subset of the ONNX schema QuantTools reads, as field numbers of the ONNX specification (IR version 3 to 10).
/// Fields not listed here are skipped by wire type. Our own declaration, not a copy of onnx.proto.
/// </summary>
internal static class OnnxFields
{
    public static class Model
    {
        public const int IrVersion = 1, ProducerName = 2, ProducerVersion = 3, Domain = 4, ModelVersion = 5, DocString = 6,
            Graph = 7, OpsetImport = 8, MetadataProps = 14;
    }

    public static class OpsetId { public const int Domain = 1, Version = 2; }

    public static class Graph
    {
        public const int Node = 1, Name = 2, Initializer = 5, DocString = 10, Input = 11, Output = 12, ValueInfo = 13,
            SparseInitializer = 15;
    }

    public static class Node
    {
        public const int Input = 1, Output = 2, Name = 3, OpType = 4, Attribute = 5, DocString = 6, Domain = 7;
    }

    public static class Attribute
    {
        public const int Name = 1, F = 2, I = 3, S = 4, T = 5, G = 6, Floats = 7, Ints = 8, Strings = 9, Tensors = 10,
            Graphs = 11, Type = 20, RefAttrName = 21;
    }

    public static class Tensor
    {
        public const int Dims = 1, DataType = 2, Segment = 3, FloatData = 4, Int32Data = 5, StringData = 6, Int64Data = 7,
            Name = 8, RawData = 9, DoubleData = 10, Uint64Data = 11, DocString = 12, ExternalData = 13, DataLocation = 14;
    }

    public static class StringStringEntry { public const int Key = 1, Value = 2; }

    public static class ValueInfo { public const int Name = 1, Type = 2; }

    public static class TypeProto { public const int TensorType = 1; }

    public static class TensorType { public const int ElemType = 1, Shape = 2; }

    public static class Shape { public const int Dim = 1; }

    public static class Dimension { public const int DimValue = 1, DimParam = 2; }
}

/// <summary>ONNX <c>TensorProto.DataType</c> values QuantTools knows by name.</summary>
public enum OnnxDataType
{
    Undefined = 0,
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    UInt16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    UInt32 = 12,
    UInt64 = 13,
    Complex64 = 14,
    Complex128 = 15,
    BFloat16 = 16,
    Float8E4M3FN = 17,
    Float8E4M3FNUZ = 18,
    Float8E5M2 = 19,
    Float8E5M2FNUZ = 20,
    UInt4 = 21,
    Int4 = 22,
}

/// <summary><c>AttributeProto.AttributeType</c>.</summary>
public enum OnnxAttributeType
{
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Graph = 5,
    Floats = 6,
    Ints = 7,
    Strings = 8,
    Tensors = 9,
    Graphs = 10,
    SparseTensor = 11,
    SparseTensors = 12,
    TypeProto = 13,
    TypeProtos = 14,
}
