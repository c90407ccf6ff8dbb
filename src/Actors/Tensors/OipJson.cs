using System.Text.Json;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tensors;

/// <summary>An Open Inference Protocol inference request, read from its JSON form.</summary>
public sealed record OipRequest(string? Id, NamedTensor[] Inputs, string[]? RequestedOutputs);

/// <summary>
/// The Open Inference Protocol's JSON request and response bodies
/// (<c>{"id", "inputs": [{name, shape, datatype, data}], "outputs": [{name}]}</c>).
/// </summary>
public static class OipJson
{
    public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    public static OipRequest ReadRequest(JsonElement root, TensorLimits limits)
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
        foreach (var input in inputsElement.EnumerateArray())
        {
            var tensor = ReadInput(input, index++, limits);
            if (!names.Add(tensor.Name))
            {
                throw new TensorFormatException($"input '{tensor.Name}' appears more than once");
            }

            inputs.Add(tensor);
        }

        string[]? outputs = null;
        if (root.TryGetProperty("outputs", out var outputsElement))
        {
            if (outputsElement.ValueKind != JsonValueKind.Array)
            {
                throw new TensorFormatException("'outputs' must be an array of {\"name\": ...} objects");
            }

            outputs = [.. outputsElement.EnumerateArray().Select(o =>
                o.ValueKind == JsonValueKind.Object && o.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                    ? n.GetString()!
                    : throw new TensorFormatException("each requested output needs a 'name' string"))];
        }

        return new OipRequest(id, [.. inputs], outputs);
    }

    private static NamedTensor ReadInput(JsonElement input, int index, TensorLimits limits)
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

        if (!input.TryGetProperty("data", out var data))
        {
            throw new TensorFormatException($"input '{name}' has no 'data'");
        }

        return TensorJson.ReadData(name, dataType, shape, data, limits);
    }

    /// <summary>Writes <c>"outputs": [...]</c> (the property and its array) into an open object.</summary>
    public static void WriteOutputs(Utf8JsonWriter writer, IEnumerable<NamedTensor> outputs)
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
            writer.WritePropertyName("data");
            TensorJson.WriteData(writer, output, nested: false);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }
}
