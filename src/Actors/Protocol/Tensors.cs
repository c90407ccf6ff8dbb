using System.Diagnostics.CodeAnalysis;
using Serve.Actors.Tensors;

namespace Serve.Actors.Protocol;

/// <summary>The Open Inference Protocol's tensor datatypes (names as on the wire).</summary>
[SuppressMessage("Naming", "CA1720", Justification = "The protocol's own datatype names.")]
public enum TensorDataType
{
    BOOL,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    INT8,
    INT16,
    INT32,
    INT64,
    FP16,
    BF16,
    FP32,
    FP64,
    BYTES,
}

/// <summary>
/// A tensor as plain bytes: row-major, little-endian, no padding (the Open Inference Protocol's raw
/// layout). BYTES tensors hold each element as a 4-byte little-endian length followed by its bytes.
/// </summary>
public sealed record NamedTensor(string Name, TensorDataType DataType, long[] Shape, byte[] Data)
{
    public long ElementCount => TensorShapes.ElementCount(Shape);
}

/// <summary>Name, datatype and shape of a model input or output; -1 marks a variable dimension.</summary>
public sealed record TensorSpec(string Name, TensorDataType DataType, long[] Shape)
{
    public bool Equals(TensorSpec? other) =>
        other is not null && Name == other.Name && DataType == other.DataType && Shape.SequenceEqual(other.Shape);

    public override int GetHashCode() => HashCode.Combine(Name, DataType, Shape.Length);
}

/// <summary>What a loaded model tells clients about itself (Open Inference Protocol metadata).</summary>
public sealed record ModelSignature(string Platform, TensorSpec[] Inputs, TensorSpec[] Outputs)
{
    public bool Equals(ModelSignature? other) =>
        other is not null && Platform == other.Platform && Inputs.SequenceEqual(other.Inputs) && Outputs.SequenceEqual(other.Outputs);

    public override int GetHashCode() => HashCode.Combine(Platform, Inputs.Length, Outputs.Length);
}
