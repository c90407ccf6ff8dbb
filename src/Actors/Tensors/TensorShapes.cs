using System.Buffers.Binary;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tensors;

/// <summary>Sizes and counts of tensors, checked so that a hostile shape cannot overflow or over-allocate.</summary>
public static class TensorShapes
{
    /// <summary>Bytes per element, or 0 for BYTES (variable length).</summary>
    public static int ElementSize(TensorDataType type) => type switch
    {
        TensorDataType.BOOL or TensorDataType.UINT8 or TensorDataType.INT8 => 1,
        TensorDataType.UINT16 or TensorDataType.INT16 or TensorDataType.FP16 or TensorDataType.BF16 => 2,
        TensorDataType.UINT32 or TensorDataType.INT32 or TensorDataType.FP32 => 4,
        TensorDataType.UINT64 or TensorDataType.INT64 or TensorDataType.FP64 => 8,
        TensorDataType.BYTES => 0,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown datatype"),
    };

    /// <summary>Product of the dimensions; throws on a negative dimension or overflow.</summary>
    public static long ElementCount(IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                throw new ArgumentException($"shape [{Format(shape)}] has a negative dimension");
            }

            count = checked(count * dim);
        }

        return count;
    }

    /// <summary>Like <see cref="ElementCount"/> but reports problems instead of throwing.</summary>
    public static bool TryElementCount(IReadOnlyList<long> shape, long maxElements, out long count, out string? problem)
    {
        count = 1;
        problem = null;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                problem = $"shape [{Format(shape)}] has a negative dimension";
                return false;
            }

            if (dim != 0 && count > maxElements / dim)
            {
                problem = $"shape [{Format(shape)}] has more than the allowed {maxElements} elements";
                return false;
            }

            count *= dim;
        }

        return true;
    }

    public static string Format(IReadOnlyList<long> shape) => string.Join(",", shape);

    public static bool TryParseDataType(string? name, out TensorDataType type) =>
        Enum.TryParse(name, ignoreCase: false, out type) && Enum.IsDefined(type);

    /// <summary>
    /// Checks that <paramref name="tensor"/>'s byte length agrees with its shape and datatype (for BYTES:
    /// that the length prefixes walk the buffer exactly).
    /// </summary>
    public static string? Validate(NamedTensor tensor, long maxElements)
    {
        if (!TryElementCount(tensor.Shape, maxElements, out var count, out var problem))
        {
            return $"input '{tensor.Name}': {problem}";
        }

        if (tensor.DataType != TensorDataType.BYTES)
        {
            var expected = count * ElementSize(tensor.DataType);
            return tensor.Data.LongLength == expected
                ? null
                : $"input '{tensor.Name}': shape [{Format(tensor.Shape)}] of {tensor.DataType} needs {expected} bytes, got {tensor.Data.LongLength}";
        }

        long elements = 0;
        var data = tensor.Data.AsSpan();
        while (data.Length > 0)
        {
            if (data.Length < 4)
            {
                return $"input '{tensor.Name}': BYTES data ends inside an element's length prefix";
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(data);
            if (length > data.Length - 4)
            {
                return $"input '{tensor.Name}': BYTES element {elements} claims {length} bytes, only {data.Length - 4} remain";
            }

            data = data[(4 + (int)length)..];
            elements++;
        }

        return elements == count
            ? null
            : $"input '{tensor.Name}': shape [{Format(tensor.Shape)}] needs {count} BYTES elements, got {elements}";
    }

    /// <summary>Splits a BYTES tensor's buffer into its elements.</summary>
    public static List<byte[]> ReadBytesElements(NamedTensor tensor)
    {
        var result = new List<byte[]>();
        var data = tensor.Data.AsSpan();
        while (data.Length >= 4)
        {
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(data);
            result.Add(data.Slice(4, length).ToArray());
            data = data[(4 + length)..];
        }

        return result;
    }

    /// <summary>Builds a BYTES tensor's buffer from its elements.</summary>
    public static byte[] WriteBytesElements(IReadOnlyList<byte[]> elements)
    {
        var buffer = new byte[elements.Sum(e => 4L + e.Length)];
        var span = buffer.AsSpan();
        foreach (var element in elements)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)element.Length);
            element.CopyTo(span[4..]);
            span = span[(4 + element.Length)..];
        }

        return buffer;
    }
}
