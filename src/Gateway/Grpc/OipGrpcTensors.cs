using System.Buffers.Binary;
using Google.Protobuf;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Gateway.Grpc.Oip;

namespace Serve.Gateway.Grpc;

/// <summary>
/// Tensors between the Open Inference Protocol's gRPC messages and Serve's raw layout (row-major,
/// little-endian, no padding: the same as <c>raw_input_contents</c>, so raw tensors are copied once and
/// never converted). Typed contents are checked against the datatype: each datatype has one contents
/// field, and an element that does not fit its datatype is refused, not truncated.
/// </summary>
public static class OipGrpcTensors
{
    public static NamedTensor[] ReadInputs(ModelInferRequest request, TensorLimits limits)
    {
        if (request.Inputs.Count == 0)
        {
            throw new TensorFormatException("the request needs at least one input");
        }

        var raw = request.RawInputContents;
        if (raw.Count > 0 && raw.Count != request.Inputs.Count)
        {
            throw new TensorFormatException(
                $"raw_input_contents has {raw.Count} entries for {request.Inputs.Count} inputs: give one per input, in the order of inputs");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        var tensors = new NamedTensor[request.Inputs.Count];
        for (var i = 0; i < tensors.Length; i++)
        {
            var input = request.Inputs[i];
            var tensor = raw.Count > 0 ? FromRaw(input, raw[i], limits) : FromContents(input, limits);
            if (!names.Add(tensor.Name))
            {
                throw new TensorFormatException($"input '{tensor.Name}' appears more than once");
            }

            tensors[i] = tensor;
        }

        return tensors;
    }

    /// <summary>
    /// Fills <paramref name="response"/>'s outputs; raw (one <c>raw_output_contents</c> entry per output) when
    /// <paramref name="raw"/> is asked or an output has no typed field (FP16, BF16), since the protocol allows
    /// raw for all outputs or for none.
    /// </summary>
    public static void WriteOutputs(ModelInferResponse response, IReadOnlyList<NamedTensor> outputs, bool raw)
    {
        raw |= outputs.Any(o => o.DataType is TensorDataType.FP16 or TensorDataType.BF16);
        foreach (var output in outputs)
        {
            var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = output.DataType.ToString() };
            tensor.Shape.Add(output.Shape);
            if (raw)
            {
                // The tensor's buffer is not touched again: hand it to protobuf without a copy.
                response.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(output.Data));
            }
            else
            {
                tensor.Contents = ToContents(output);
            }

            response.Outputs.Add(tensor);
        }
    }

    private static NamedTensor Header(ModelInferRequest.Types.InferInputTensor input, TensorLimits limits, out long count)
    {
        if (string.IsNullOrEmpty(input.Name))
        {
            throw new TensorFormatException("every input needs a name");
        }

        if (!TensorShapes.TryParseDataType(input.Datatype, out var type))
        {
            throw new TensorFormatException(
                $"input '{input.Name}': datatype '{input.Datatype}' is not one of {string.Join(", ", Enum.GetNames<TensorDataType>())}");
        }

        if (input.Shape.Count > limits.MaxRank)
        {
            throw new TensorFormatException($"input '{input.Name}': rank {input.Shape.Count} is more than the allowed {limits.MaxRank}");
        }

        long[] shape = [.. input.Shape];
        if (!TensorShapes.TryElementCount(shape, limits.MaxElements, out count, out var problem))
        {
            throw new TensorFormatException($"input '{input.Name}': {problem}");
        }

        return new NamedTensor(input.Name, type, shape, []);
    }

    private static NamedTensor FromRaw(ModelInferRequest.Types.InferInputTensor input, ByteString raw, TensorLimits limits)
    {
        var header = Header(input, limits, out _);
        if (HasContents(input.Contents))
        {
            throw new TensorFormatException(
                $"input '{input.Name}' has both contents and raw_input_contents: with raw_input_contents, leave every input's contents empty");
        }

        var tensor = header with { Data = raw.ToByteArray() };
        return TensorShapes.Validate(tensor, limits.MaxElements) is { } problem ? throw new TensorFormatException(problem) : tensor;
    }

    private static NamedTensor FromContents(ModelInferRequest.Types.InferInputTensor input, TensorLimits limits)
    {
        var header = Header(input, limits, out var count);
        var contents = input.Contents ?? new InferTensorContents();
        var (field, present) = Field(header.DataType, contents);
        if (field is null)
        {
            throw new TensorFormatException(
                $"input '{input.Name}': {header.DataType} has no typed contents field in the protocol; send it in raw_input_contents");
        }

        if (OtherFieldUsed(contents, field) is { } other)
        {
            throw new TensorFormatException(
                $"input '{input.Name}' is {header.DataType} but its elements are in {other}; {header.DataType} elements go in {field}");
        }

        if (present != count)
        {
            throw new TensorFormatException(
                $"input '{input.Name}': shape [{TensorShapes.Format(header.Shape)}] needs {count} elements, {field} has {present}");
        }

        return header with { Data = ToRaw(header, contents) };
    }

    /// <summary>The contents field that holds <paramref name="type"/>, and how many elements it has; null for FP16/BF16.</summary>
    private static (string? Field, long Count) Field(TensorDataType type, InferTensorContents c) => type switch
    {
        TensorDataType.BOOL => ("bool_contents", c.BoolContents.Count),
        TensorDataType.INT8 or TensorDataType.INT16 or TensorDataType.INT32 => ("int_contents", c.IntContents.Count),
        TensorDataType.INT64 => ("int64_contents", c.Int64Contents.Count),
        TensorDataType.UINT8 or TensorDataType.UINT16 or TensorDataType.UINT32 => ("uint_contents", c.UintContents.Count),
        TensorDataType.UINT64 => ("uint64_contents", c.Uint64Contents.Count),
        TensorDataType.FP32 => ("fp32_contents", c.Fp32Contents.Count),
        TensorDataType.FP64 => ("fp64_contents", c.Fp64Contents.Count),
        TensorDataType.BYTES => ("bytes_contents", c.BytesContents.Count),
        _ => (null, 0),
    };

    private static string? OtherFieldUsed(InferTensorContents c, string field)
    {
        (string Name, int Count)[] fields =
        [
            ("bool_contents", c.BoolContents.Count), ("int_contents", c.IntContents.Count), ("int64_contents", c.Int64Contents.Count),
            ("uint_contents", c.UintContents.Count), ("uint64_contents", c.Uint64Contents.Count), ("fp32_contents", c.Fp32Contents.Count),
            ("fp64_contents", c.Fp64Contents.Count), ("bytes_contents", c.BytesContents.Count),
        ];
        return fields.Where(f => f.Count > 0 && f.Name != field).Select(f => f.Name).FirstOrDefault();
    }

    private static bool HasContents(InferTensorContents? c) => c is not null && OtherFieldUsed(c, string.Empty) is not null;

    private static byte[] ToRaw(NamedTensor header, InferTensorContents c)
    {
        var name = header.Name;
        switch (header.DataType)
        {
            case TensorDataType.BOOL:
                return [.. c.BoolContents.Select(b => b ? (byte)1 : (byte)0)];
            case TensorDataType.INT8:
                return [.. c.IntContents.Select(v => unchecked((byte)(sbyte)InRange(name, v, sbyte.MinValue, sbyte.MaxValue)))];
            case TensorDataType.INT16:
                return Pack(c.IntContents, 2, (span, v) => BinaryPrimitives.WriteInt16LittleEndian(span, (short)InRange(name, v, short.MinValue, short.MaxValue)));
            case TensorDataType.INT32:
                return Pack(c.IntContents, 4, BinaryPrimitives.WriteInt32LittleEndian);
            case TensorDataType.INT64:
                return Pack(c.Int64Contents, 8, BinaryPrimitives.WriteInt64LittleEndian);
            case TensorDataType.UINT8:
                return [.. c.UintContents.Select(v => (byte)InRange(name, v, byte.MinValue, byte.MaxValue))];
            case TensorDataType.UINT16:
                return Pack(c.UintContents, 2, (span, v) => BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)InRange(name, v, ushort.MinValue, ushort.MaxValue)));
            case TensorDataType.UINT32:
                return Pack(c.UintContents, 4, BinaryPrimitives.WriteUInt32LittleEndian);
            case TensorDataType.UINT64:
                return Pack(c.Uint64Contents, 8, BinaryPrimitives.WriteUInt64LittleEndian);
            case TensorDataType.FP32:
                return Pack(c.Fp32Contents, 4, BinaryPrimitives.WriteSingleLittleEndian);
            case TensorDataType.FP64:
                return Pack(c.Fp64Contents, 8, BinaryPrimitives.WriteDoubleLittleEndian);
            case TensorDataType.BYTES:
                return TensorShapes.WriteBytesElements([.. c.BytesContents.Select(b => b.ToByteArray())]);
            default:
                throw new TensorFormatException($"input '{name}': {header.DataType} must be sent in raw_input_contents");
        }
    }

    private static InferTensorContents ToContents(NamedTensor tensor)
    {
        var contents = new InferTensorContents();
        var data = tensor.Data;
        switch (tensor.DataType)
        {
            case TensorDataType.BOOL:
                contents.BoolContents.Add(data.Select(b => b != 0));
                break;
            case TensorDataType.INT8:
                contents.IntContents.Add(data.Select(b => (int)unchecked((sbyte)b)));
                break;
            case TensorDataType.INT16:
                contents.IntContents.Add(Unpack(data, 2, s => (int)BinaryPrimitives.ReadInt16LittleEndian(s)));
                break;
            case TensorDataType.INT32:
                contents.IntContents.Add(Unpack(data, 4, BinaryPrimitives.ReadInt32LittleEndian));
                break;
            case TensorDataType.INT64:
                contents.Int64Contents.Add(Unpack(data, 8, BinaryPrimitives.ReadInt64LittleEndian));
                break;
            case TensorDataType.UINT8:
                contents.UintContents.Add(data.Select(b => (uint)b));
                break;
            case TensorDataType.UINT16:
                contents.UintContents.Add(Unpack(data, 2, s => (uint)BinaryPrimitives.ReadUInt16LittleEndian(s)));
                break;
            case TensorDataType.UINT32:
                contents.UintContents.Add(Unpack(data, 4, BinaryPrimitives.ReadUInt32LittleEndian));
                break;
            case TensorDataType.UINT64:
                contents.Uint64Contents.Add(Unpack(data, 8, BinaryPrimitives.ReadUInt64LittleEndian));
                break;
            case TensorDataType.FP32:
                contents.Fp32Contents.Add(Unpack(data, 4, BinaryPrimitives.ReadSingleLittleEndian));
                break;
            case TensorDataType.FP64:
                contents.Fp64Contents.Add(Unpack(data, 8, BinaryPrimitives.ReadDoubleLittleEndian));
                break;
            case TensorDataType.BYTES:
                contents.BytesContents.Add(TensorShapes.ReadBytesElements(tensor).Select(ByteString.CopyFrom));
                break;
            default:
                throw new InvalidOperationException($"{tensor.DataType} has no typed contents field; it is always sent raw");
        }

        return contents;
    }

    private delegate void Writer<in T>(Span<byte> destination, T value);

    private static byte[] Pack<T>(IReadOnlyList<T> values, int size, Writer<T> write)
    {
        var bytes = new byte[values.Count * size];
        for (var i = 0; i < values.Count; i++)
        {
            write(bytes.AsSpan(i * size, size), values[i]);
        }

        return bytes;
    }

    private static T[] Unpack<T>(byte[] data, int size, Func<ReadOnlySpan<byte>, T> read)
    {
        var values = new T[data.Length / size];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = read(data.AsSpan(i * size, size));
        }

        return values;
    }

    private static long InRange(string name, long value, long min, long max) =>
        value >= min && value <= max
            ? value
            : throw new TensorFormatException($"input '{name}': element {value} is outside the datatype's range [{min}, {max}]");
}
