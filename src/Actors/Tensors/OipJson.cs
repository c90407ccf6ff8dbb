using System.Text.Json;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tensors;

/// <summary>
/// An Open Inference Protocol inference request, read from its JSON form. <paramref name="BinaryOutputs"/>
/// names the outputs to return as binary data (the binary tensor extension); <paramref name="AllOutputsBinary"/>
/// is the request's <c>binary_data_output</c> parameter.
/// </summary>
public sealed record OipRequest(
    string? Id, NamedTensor[] Inputs, string[]? RequestedOutputs, IReadOnlySet<string> BinaryOutputs, bool AllOutputsBinary)
{
    public bool WantsBinary(string output) => AllOutputsBinary || BinaryOutputs.Contains(output);
}

/// <summary>
/// The Open Inference Protocol's JSON request and response bodies
/// (<c>{"id", "inputs": [{name, shape, datatype, data}], "outputs": [{name}]}</c>), with the binary tensor
/// extension: an input whose <c>parameters.binary_data_size</c> is set takes its data from the bytes after
/// the JSON, in the order of the inputs; an output asked for with <c>parameters.binary_data</c> is returned the same way.
/// </summary>
public static class OipJson
{
    public const string BinaryDataSize = "binary_data_size";
    public const string BinaryData = "binary_data";
    public const string BinaryDataOutput = "binary_data_output";

    public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    /// <summary>Reads a request; <paramref name="binary"/> is what followed the JSON (empty without the extension).</summary>
    public static OipRequest ReadRequest(JsonElement root, TensorLimits limits, ReadOnlyMemory<byte> binary = default)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new TensorFormatException("the request body must be a JSON object with an 'inputs' array");
        }

        string? id = null;
        if (root.TryGetProperty("id", out var idElement))
        {
            id = idElement.ValueKind == JsonValueKind.String
                ? idElement.GetString()
                : throw new TensorFormatException("'id' must be a string");
        }

        if (!root.TryGetProperty("inputs", out var inputsElement) || inputsElement.ValueKind != JsonValueKind.Array)
        {
            throw new TensorFormatException("the request needs an 'inputs' array");
        }

        if (inputsElement.GetArrayLength() == 0)
        {
            throw new TensorFormatException("'inputs' must not be empty");
        }

        var inputs = new List<NamedTensor>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var index = 0;
        var remaining = binary;
        foreach (var input in inputsElement.EnumerateArray())
        {
            var tensor = ReadInput(input, index++, limits, ref remaining);
            if (!names.Add(tensor.Name))
            {
                throw new TensorFormatException($"input '{tensor.Name}' appears more than once");
            }

            inputs.Add(tensor);
        }

        if (!remaining.IsEmpty)
        {
            throw new TensorFormatException(
                $"{remaining.Length} bytes of binary data follow the JSON but no input's binary_data_size claims them");
        }

        string[]? outputs = null;
        var binaryOutputs = new HashSet<string>(StringComparer.Ordinal);
        if (root.TryGetProperty("outputs", out var outputsElement))
        {
            if (outputsElement.ValueKind != JsonValueKind.Array)
            {
                throw new TensorFormatException("'outputs' must be an array of {\"name\": ...} objects");
            }

            var requested = new List<string>();
            foreach (var output in outputsElement.EnumerateArray())
            {
                var name = output.ValueKind == JsonValueKind.Object && output.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                    ? n.GetString()!
                    : throw new TensorFormatException("each requested output needs a 'name' string");
                requested.Add(name);
                if (BoolParameter(output, BinaryData, $"output '{name}'"))
                {
                    binaryOutputs.Add(name);
                }
            }

            outputs = [.. requested];
        }

        var allBinary = BoolParameter(root, BinaryDataOutput, "the request");
        return new OipRequest(id, [.. inputs], outputs, binaryOutputs, allBinary);
    }

    /// <summary>A boolean in an object's <c>parameters</c>; false when absent.</summary>
    private static bool BoolParameter(JsonElement owner, string name, string what)
    {
        if (!owner.TryGetProperty("parameters", out var parameters) || parameters.ValueKind == JsonValueKind.Null)
        {
            return false;
        }

        if (parameters.ValueKind != JsonValueKind.Object)
        {
            throw new TensorFormatException($"'parameters' of {what} must be an object");
        }

        if (!parameters.TryGetProperty(name, out var value))
        {
            return false;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new TensorFormatException($"parameter '{name}' of {what} must be true or false"),
        };
    }

    private static NamedTensor ReadInput(JsonElement input, int index, TensorLimits limits, ref ReadOnlyMemory<byte> binary)
    {
        if (input.ValueKind != JsonValueKind.Object)
        {
            throw new TensorFormatException($"inputs[{index}] must be an object with name, shape, datatype and data");
        }

        var name = input.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() is { Length: > 0 } s
            ? s
            : throw new TensorFormatException($"inputs[{index}] needs a non-empty 'name'");

        if (!input.TryGetProperty("datatype", out var dt) || dt.ValueKind != JsonValueKind.String
            || !TensorShapes.TryParseDataType(dt.GetString(), out var dataType))
        {
            throw new TensorFormatException(
                $"input '{name}' needs a 'datatype', one of {string.Join(", ", Enum.GetNames<TensorDataType>())}");
        }

        if (!input.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new TensorFormatException($"input '{name}' needs a 'shape' array");
        }

        if (shapeElement.GetArrayLength() > limits.MaxRank)
        {
            throw new TensorFormatException($"input '{name}': rank {shapeElement.GetArrayLength()} is more than the allowed {limits.MaxRank}");
        }

        var shape = shapeElement.EnumerateArray().Select(d =>
            d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out var v) && v >= 0
                ? v
                : throw new TensorFormatException($"input '{name}': shape dimensions must be non-negative integers")).ToArray();

        if (BinarySize(input, name) is { } size)
        {
            if (input.TryGetProperty("data", out _))
            {
                throw new TensorFormatException($"input '{name}' has both 'data' and binary_data_size: send one");
            }

            if (size > binary.Length)
            {
                throw new TensorFormatException(
                    $"input '{name}': binary_data_size is {size} but only {binary.Length} bytes of binary data remain after the JSON");
            }

            var tensor = new NamedTensor(name, dataType, shape, binary[..(int)size].ToArray());
            binary = binary[(int)size..];
            return TensorShapes.Validate(tensor, limits.MaxElements) is { } problem
                ? throw new TensorFormatException(problem)
                : tensor;
        }

        if (!input.TryGetProperty("data", out var data))
        {
            throw new TensorFormatException($"input '{name}' has no 'data' (nor a binary_data_size parameter)");
        }

        return TensorJson.ReadData(name, dataType, shape, data, limits);
    }

    private static long? BinarySize(JsonElement input, string name)
    {
        if (!input.TryGetProperty("parameters", out var parameters) || parameters.ValueKind != JsonValueKind.Object
            || !parameters.TryGetProperty(BinaryDataSize, out var size))
        {
            return null;
        }

        return size.ValueKind == JsonValueKind.Number && size.TryGetInt64(out var bytes) && bytes >= 0
            ? bytes
            : throw new TensorFormatException($"input '{name}': binary_data_size must be a non-negative integer");
    }

    /// <summary>
    /// Writes <c>"outputs": [...]</c> (the property and its array) into an open object. An output for which
    /// <paramref name="binary"/> says yes gets <c>parameters.binary_data_size</c> instead of <c>data</c>: the
    /// caller appends its bytes after the JSON, in the order written.
    /// </summary>
    public static void WriteOutputs(Utf8JsonWriter writer, IEnumerable<NamedTensor> outputs, Func<NamedTensor, bool>? binary = null)
    {
        writer.WritePropertyName("outputs");
        writer.WriteStartArray();
        foreach (var output in outputs)
        {
            writer.WriteStartObject();
            writer.WriteString("name", output.Name);
            writer.WriteString("datatype", output.DataType.ToString());
            writer.WritePropertyName("shape");
            writer.WriteStartArray();
            foreach (var dim in output.Shape)
            {
                writer.WriteNumberValue(dim);
            }

            writer.WriteEndArray();
            if (binary?.Invoke(output) == true)
            {
                writer.WriteStartObject("parameters");
                writer.WriteNumber(BinaryDataSize, output.Data.LongLength);
                writer.WriteEndObject();
            }
            else
            {
                writer.WritePropertyName("data");
                TensorJson.WriteData(writer, output, nested: false);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }
}
