using System.Text.Json;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Torch;
using static TorchSharp.torch;

namespace Serve.Node.Handlers;

/// <summary>
/// The <c>tensor</c> handler: tensors in, tensors out. Takes Open Inference Protocol tensors, a JSON nested
/// list (one FP32 input, shape from the nesting), <c>{"data": nested list}</c>, or an Open Inference
/// Protocol body (<c>{"inputs": [...]}</c>) on TorchServe's endpoint, and answers with tensors: the gateway
/// renders them in the form the request came in.
/// </summary>
public sealed class TensorHandler(TorchModule module, TensorLimits limits) : IModelHandler
{
    public ModelSignature Signature => module.Signature;

    public PreparedRequest Prepare(InferenceInput input)
    {
        var request = input switch
        {
            TensorInput tensors => new PreparedRequest(Bind(tensors.Tensors), ResponseStyle.Tensors, tensors.RequestedOutputs),
            RawInput raw => PrepareJson(raw),
            _ => throw new ModelInputException($"the tensor handler cannot take {input.GetType().Name}"),
        };

        foreach (var tensor in request.Inputs)
        {
            if (TensorShapes.Validate(tensor, limits.MaxElements) is { } problem)
            {
                throw new ModelInputException(problem);
            }

            if (TensorConversion.ScalarTypeOf(tensor.DataType) is null)
            {
                throw new ModelInputException($"input '{tensor.Name}': datatype {tensor.DataType} is not supported by libtorch models");
            }
        }

        return request;
    }

    private NamedTensor[] Bind(NamedTensor[] tensors) => HandlerInputs.Bind(Signature.Inputs, tensors);

    private const int InlineBytes = 16 * 1024;

    public bool PreparesInline(InferenceInput input) => input switch
    {
        RawInput raw => raw.Parts.Sum(p => (long)p.Data.Length) <= InlineBytes,
        TensorInput tensors => tensors.Tensors.Sum(t => (long)t.Data.Length) <= InlineBytes,
        _ => false,
    };

    public bool CombinesRequests => true;

    public Tensor[] Postprocess(Tensor[] outputs) => outputs;

    public InferenceOutput Render(PreparedRequest request, NamedTensor[] outputs)
    {
        if (request.RequestedOutputs?.FirstOrDefault(w => outputs.All(o => o.Name != w)) is { } unknown)
        {
            throw new ModelInputException(
                $"unknown output '{unknown}'; the model's outputs are {string.Join(", ", outputs.Select(o => o.Name))}");
        }

        var selected = request.RequestedOutputs is { Length: > 0 } wanted
            ? outputs.Where(o => wanted.Contains(o.Name)).ToArray()
            : outputs;
        return new TensorOutput(selected) { NamedInputs = request.Style == ResponseStyle.NamedTensors };
    }

    private PreparedRequest PrepareJson(RawInput raw)
    {
        var part = HandlerInputs.MainPart(raw);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(part.Data, OipJson.DocumentOptions);
        }
        catch (JsonException error)
        {
            throw new ModelInputException(
                $"the tensor handler takes JSON (a nested list of numbers, or {{\"inputs\": [...]}}); the body is not valid JSON: {error.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            try
            {
                if (root.ValueKind == JsonValueKind.Array)
                {
                    return Nested(root);
                }

                if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("inputs", out _))
                {
                    var request = OipJson.ReadRequest(root, limits);
                    return new PreparedRequest(Bind(request.Inputs), ResponseStyle.NamedTensors, request.RequestedOutputs);
                }

                if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("data", out var data))
                {
                    return Nested(data);
                }
            }
            catch (TensorFormatException error)
            {
                throw new ModelInputException(error.Message);
            }

            throw new ModelInputException(
                "the tensor handler takes a JSON nested list of numbers, {\"data\": nested list}, or {\"inputs\": [...]}");
        }
    }

    private PreparedRequest Nested(JsonElement data)
    {
        if (Signature.Inputs is not [var only])
        {
            throw new ModelInputException(
                $"a nested list is one input, and this model takes {Signature.Inputs.Length}: send them by name as {{\"inputs\": [...]}} "
                + $"({string.Join(", ", Signature.Inputs.Select(i => $"'{i.Name}'"))})");
        }

        return new PreparedRequest([TensorJson.ReadNested(only.Name, TensorDataType.FP32, data, limits)], ResponseStyle.Tensors, null);
    }
}

/// <summary>Where TorchServe handlers find their input: the part named <c>data</c>, else <c>body</c>, else the first.</summary>
public static class HandlerInputs
{
    public static PayloadPart MainPart(RawInput raw)
    {
        var part = raw.Parts.FirstOrDefault(p => p.Name == "data")
                   ?? raw.Parts.FirstOrDefault(p => p.Name == RawInput.BodyPartName)
                   ?? raw.Parts.FirstOrDefault()
                   ?? throw new ModelInputException("the request has no body");
        return part.Data.Length == 0 ? throw new ModelInputException($"the request's '{part.Name}' is empty") : part;
    }

    /// <summary>A request's tensors in the order of the model's declared inputs, matched by name (never by position).</summary>
    public static NamedTensor[] Bind(TensorSpec[] declared, NamedTensor[] tensors)
    {
        try
        {
            return InputBinding.Bind(declared, tensors);
        }
        catch (TensorFormatException error)
        {
            throw new ModelInputException(error.Message);
        }
    }

    /// <summary>Open Inference Protocol tensors bound to the declared inputs by name; any other input as it is.</summary>
    public static InferenceInput Bind(TensorSpec[] declared, InferenceInput input) =>
        input is TensorInput tensors ? tensors with { Tensors = Bind(declared, tensors.Tensors) } : input;
}
