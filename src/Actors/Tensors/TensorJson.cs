using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tensors;

/// <summary>A tensor in JSON that does not match its declared datatype or shape.</summary>
public sealed class TensorFormatException(string message) : Exception(message);

/// <summary>Limits on tensors taken from clients, checked before anything is allocated for them.</summary>
public sealed record TensorLimits(long MaxElements, int MaxRank)
{
    public static TensorLimits Default { get; } = new(MaxElements: 64L * 1024 * 1024, MaxRank: 16);
}

/// <summary>
/// Tensors as JSON arrays, nested or flat, row-major (the Open Inference Protocol's JSON form and
/// TorchServe's nested lists). One codec for the gateway and the workers.
/// </summary>
/// <remarks>
/// Longer than most files here because it is one codec: a reader and a writer for each of the fourteen
/// datatypes, nested and flat, which must stay in step with each other.
/// </remarks>
public static class TensorJson
{
    /// <summary>Reads the <c>data</c> of a tensor whose datatype and shape are declared.</summary>
    public static NamedTensor ReadData(string name, TensorDataType type, long[] shape, JsonElement data, TensorLimits limits)
    {
        if (shape.Length > limits.MaxRank)
        {
            throw new TensorFormatException($"input '{name}': rank {shape.Length} is more than the allowed {limits.MaxRank}");
        }

        if (!TensorShapes.TryElementCount(shape, limits.MaxElements, out var expected, out var problem))
        {
            throw new TensorFormatException($"input '{name}': {problem}");
        }

        if (data.ValueKind != JsonValueKind.Array)
        {
            throw new TensorFormatException($"input '{name}': 'data' must be an array, not {Describe(data.ValueKind)}");
        }

        // Count what was actually sent before allocating, so a shape that claims more than the body
        // holds costs nothing.
        var actual = CountScalars(name, data, depth: 0, limits);
        if (actual != expected)
        {
            throw new TensorFormatException(
                $"input '{name}': shape [{TensorShapes.Format(shape)}] needs {expected} elements, 'data' has {actual}");
        }

        var sink = new ElementSink(name, type, actual);
        Flatten(data, sink);
        return new NamedTensor(name, type, shape, sink.ToArray());
    }

    /// <summary>Reads a nested list whose shape is given by its nesting (must be rectangular).</summary>
    public static NamedTensor ReadNested(string name, TensorDataType type, JsonElement data, TensorLimits limits)
    {
        var shape = new List<long>();
        var probe = data;
        while (probe.ValueKind == JsonValueKind.Array)
        {
            if (shape.Count >= limits.MaxRank)
            {
                throw new TensorFormatException($"input '{name}': nesting deeper than the allowed rank {limits.MaxRank}");
            }

            var length = probe.GetArrayLength();
            shape.Add(length);
            if (length == 0)
            {
                break;
            }

            probe = probe[0];
        }

        if (shape.Count == 0)
        {
            throw new TensorFormatException($"input '{name}': expected a JSON array of numbers, got {Describe(data.ValueKind)}");
        }

        var dims = shape.ToArray();
        if (!TensorShapes.TryElementCount(dims, limits.MaxElements, out var count, out var problem))
        {
            throw new TensorFormatException($"input '{name}': {problem}");
        }

        // The shape above comes from the first item at each depth; count what was really sent before
        // allocating, so lists that only pretend to be large cost nothing.
        if (CountScalars(name, data, depth: 0, limits) != count)
        {
            throw new TensorFormatException(
                $"input '{name}': nested lists are not rectangular (shape [{TensorShapes.Format(dims)}] from the first items)");
        }

        var sink = new ElementSink(name, type, count);
        FlattenRectangular(name, data, dims, 0, sink);
        return new NamedTensor(name, type, dims, sink.ToArray());
    }

    /// <summary>Writes a tensor's elements as a JSON array, nested by its shape or flat.</summary>
    public static void WriteData(Utf8JsonWriter writer, NamedTensor tensor, bool nested)
    {
        var reader = new ElementReader(tensor);
        if (!nested || tensor.Shape.Length == 0)
        {
            writer.WriteStartArray();
            for (long i = 0; i < tensor.ElementCount; i++)
            {
                reader.WriteNext(writer);
            }

            writer.WriteEndArray();
            return;
        }

        WriteNested(writer, tensor.Shape, 0, ref reader);
    }

    private static void WriteNested(Utf8JsonWriter writer, long[] shape, int axis, ref ElementReader reader)
    {
        writer.WriteStartArray();
        for (long i = 0; i < shape[axis]; i++)
        {
            if (axis == shape.Length - 1)
            {
                reader.WriteNext(writer);
            }
            else
            {
                WriteNested(writer, shape, axis + 1, ref reader);
            }
        }

        writer.WriteEndArray();
    }

    private static long CountScalars(string name, JsonElement element, int depth, TensorLimits limits)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            return 1;
        }

        if (depth >= limits.MaxRank)
        {
            throw new TensorFormatException($"input '{name}': 'data' is nested deeper than the allowed rank {limits.MaxRank}");
        }

        long count = 0;
        foreach (var item in element.EnumerateArray())
        {
            count += CountScalars(name, item, depth + 1, limits);
            if (count > limits.MaxElements)
            {
                throw new TensorFormatException($"input '{name}': 'data' has more than the allowed {limits.MaxElements} elements");
            }
        }

        return count;
    }

    private static void Flatten(JsonElement element, ElementSink sink)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            sink.Add(element);
            return;
        }

        foreach (var item in element.EnumerateArray())
        {
            Flatten(item, sink);
        }
    }

    private static void FlattenRectangular(string name, JsonElement element, long[] shape, int axis, ElementSink sink)
    {
        if (axis == shape.Length)
        {
            sink.Add(element);
            return;
        }

        if (element.ValueKind != JsonValueKind.Array || element.GetArrayLength() != shape[axis])
        {
            throw new TensorFormatException(
                $"input '{name}': nested lists are not rectangular (expected {shape[axis]} items at depth {axis + 1})");
        }

        foreach (var item in element.EnumerateArray())
        {
            FlattenRectangular(name, item, shape, axis + 1, sink);
        }
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    /// <summary>Converts JSON scalars to little-endian elements of one datatype.</summary>
    private sealed class ElementSink
    {
        private readonly string _name;
        private readonly TensorDataType _type;
        private readonly byte[]? _fixed;
        private readonly List<byte[]>? _strings;
        private long _index;

        public ElementSink(string name, TensorDataType type, long count)
        {
            _name = name;
            _type = type;
            if (type == TensorDataType.BYTES)
            {
                _strings = [];
            }
            else
            {
                _fixed = new byte[checked(count * TensorShapes.ElementSize(type))];
            }
        }

        public byte[] ToArray() => _fixed ?? TensorShapes.WriteBytesElements(_strings!);

        public void Add(JsonElement value)
        {
            if (_strings is not null)
            {
                if (value.ValueKind != JsonValueKind.String)
                {
                    throw Wrong(value, "a string");
                }

                _strings.Add(Encoding.UTF8.GetBytes(value.GetString()!));
                _index++;
                return;
            }

            var size = TensorShapes.ElementSize(_type);
            var span = _fixed.AsSpan(checked((int)(_index * size)), size);
            switch (_type)
            {
                case TensorDataType.BOOL:
                    span[0] = value.ValueKind switch
                    {
                        JsonValueKind.True => 1,
                        JsonValueKind.False => 0,
                        _ => throw Wrong(value, "true or false"),
                    };
                    break;
                case TensorDataType.UINT8:
                    span[0] = checked((byte)Unsigned(value, byte.MaxValue));
                    break;
                case TensorDataType.UINT16:
                    BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)Unsigned(value, ushort.MaxValue));
                    break;
                case TensorDataType.UINT32:
                    BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)Unsigned(value, uint.MaxValue));
                    break;
                case TensorDataType.UINT64:
                    BinaryPrimitives.WriteUInt64LittleEndian(span, Unsigned(value, ulong.MaxValue));
                    break;
                case TensorDataType.INT8:
                    span[0] = unchecked((byte)(sbyte)Signed(value, sbyte.MinValue, sbyte.MaxValue));
                    break;
                case TensorDataType.INT16:
                    BinaryPrimitives.WriteInt16LittleEndian(span, (short)Signed(value, short.MinValue, short.MaxValue));
                    break;
                case TensorDataType.INT32:
                    BinaryPrimitives.WriteInt32LittleEndian(span, (int)Signed(value, int.MinValue, int.MaxValue));
                    break;
                case TensorDataType.INT64:
                    BinaryPrimitives.WriteInt64LittleEndian(span, Signed(value, long.MinValue, long.MaxValue));
                    break;
                case TensorDataType.FP16:
                    BinaryPrimitives.WriteHalfLittleEndian(span, (Half)Floating(value));
                    break;
                case TensorDataType.BF16:
                    BinaryPrimitives.WriteUInt16LittleEndian(span, BFloat16.FromSingle((float)Floating(value)));
                    break;
                case TensorDataType.FP32:
                    BinaryPrimitives.WriteSingleLittleEndian(span, (float)Floating(value));
                    break;
                case TensorDataType.FP64:
                    BinaryPrimitives.WriteDoubleLittleEndian(span, Floating(value));
                    break;
                default:
                    throw new TensorFormatException($"input '{_name}': datatype {_type} cannot be read from JSON");
            }

            _index++;
        }

        private ulong Unsigned(JsonElement value, ulong max) =>
            value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out var v) && v <= max
                ? v
                : throw Wrong(value, $"an integer from 0 to {max}");

        private long Signed(JsonElement value, long min, long max) =>
            value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var v) && v >= min && v <= max
                ? v
                : throw Wrong(value, $"an integer from {min} to {max}");

        private double Floating(JsonElement value) =>
            value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var v)
                ? v
                : throw Wrong(value, "a number");

        private TensorFormatException Wrong(JsonElement value, string expected)
        {
            var shown = value.ValueKind is JsonValueKind.Object or JsonValueKind.Array ? Describe(value.ValueKind) : value.GetRawText();
            if (shown.Length > 40)
            {
                shown = shown[..40] + "...";
            }

            return new TensorFormatException(
                $"input '{_name}': element {_index} is {shown}; datatype {_type} needs {expected}");
        }
    }

    /// <summary>Reads little-endian elements and writes them as JSON values.</summary>
    private struct ElementReader(NamedTensor tensor)
    {
        private readonly NamedTensor _tensor = tensor;
        private readonly int _size = TensorShapes.ElementSize(tensor.DataType);
        private int _offset;

        public void WriteNext(Utf8JsonWriter writer)
        {
            var data = _tensor.Data.AsSpan(_offset);
            switch (_tensor.DataType)
            {
                case TensorDataType.BOOL:
                    writer.WriteBooleanValue(data[0] != 0);
                    break;
                case TensorDataType.UINT8:
                    writer.WriteNumberValue(data[0]);
                    break;
                case TensorDataType.UINT16:
                    writer.WriteNumberValue(BinaryPrimitives.ReadUInt16LittleEndian(data));
                    break;
                case TensorDataType.UINT32:
                    writer.WriteNumberValue(BinaryPrimitives.ReadUInt32LittleEndian(data));
                    break;
                case TensorDataType.UINT64:
                    writer.WriteNumberValue(BinaryPrimitives.ReadUInt64LittleEndian(data));
                    break;
                case TensorDataType.INT8:
                    writer.WriteNumberValue((sbyte)data[0]);
                    break;
                case TensorDataType.INT16:
                    writer.WriteNumberValue(BinaryPrimitives.ReadInt16LittleEndian(data));
                    break;
                case TensorDataType.INT32:
                    writer.WriteNumberValue(BinaryPrimitives.ReadInt32LittleEndian(data));
                    break;
                case TensorDataType.INT64:
                    writer.WriteNumberValue(BinaryPrimitives.ReadInt64LittleEndian(data));
                    break;
                case TensorDataType.FP16:
                    WriteFloat(writer, (float)BinaryPrimitives.ReadHalfLittleEndian(data));
                    break;
                case TensorDataType.BF16:
                    WriteFloat(writer, BFloat16.ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(data)));
                    break;
                case TensorDataType.FP32:
                    WriteFloat(writer, BinaryPrimitives.ReadSingleLittleEndian(data));
                    break;
                case TensorDataType.FP64:
                    WriteDouble(writer, BinaryPrimitives.ReadDoubleLittleEndian(data));
                    break;
                case TensorDataType.BYTES:
                    var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(data);
                    writer.WriteStringValue(Encoding.UTF8.GetString(data.Slice(4, length)));
                    _offset += 4 + length;
                    return;
                default:
                    throw new InvalidOperationException($"datatype {_tensor.DataType} has no JSON form");
            }

            _offset += _size;
        }

        // JSON has no NaN or infinities; write them as strings rather than fail the whole response.
        private static void WriteFloat(Utf8JsonWriter writer, float value)
        {
            if (float.IsFinite(value))
            {
                writer.WriteNumberValue(value);
            }
            else
            {
                writer.WriteStringValue(value.ToString(CultureInfo.InvariantCulture));
            }
        }

        private static void WriteDouble(Utf8JsonWriter writer, double value)
        {
            if (double.IsFinite(value))
            {
                writer.WriteNumberValue(value);
            }
            else
            {
                writer.WriteStringValue(value.ToString(CultureInfo.InvariantCulture));
            }
        }
    }
}

/// <summary>bfloat16: the top 16 bits of an IEEE float, rounded to nearest even.</summary>
public static class BFloat16
{
    public static ushort FromSingle(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x40);
        }

        var rounding = 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    public static float ToSingle(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);
}
