using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Actors.Tensors;
using Serve.Gateway.Hosting;
using Serve.Gateway.Inference;
using Serve.Gateway.Security;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// The Open Inference Protocol (KServe v2) REST API on the inference listener: health, server and model
/// metadata, model readiness and inference with JSON tensors, shaped as the protocol's specification says,
/// and the binary tensor extension (<c>Inference-Header-Content-Length</c>: the JSON, then raw tensor bytes).
/// </summary>
public static class OipApi
{
    /// <summary>The binary tensor extension's header: how many bytes of the body are JSON; raw tensor bytes follow.</summary>
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";

    public static IEndpointRouteBuilder MapOipApi(this IEndpointRouteBuilder app)
    {
        var v2 = app.MapGroup("/v2").OnListener(ListenerKind.Inference);
        // Liveness and readiness answer without a key (a yes or no, for probes); everything else needs one.
        v2.MapGet("/health/live", () => Results.Json(new { live = true })).WithoutKey();
        v2.MapGet("/health/ready", (CatalogView catalog) => catalog.Current.AllModelsReady
            ? Results.Json(new { ready = true })
            : Results.Json(new { ready = false }, statusCode: StatusCodes.Status503ServiceUnavailable)).WithoutKey();
        v2.MapGet(string.Empty, () => Results.Json(new { name = OipModels.ServerName, version = OipModels.ServerVersion, extensions = OipModels.Extensions }));

        v2.MapGet("/models/{model}", (string model, CatalogView catalog, HttpContext context) =>
            Metadata(catalog.Current, model, null, TenantContext.Of(context).Id));
        v2.MapGet("/models/{model}/versions/{version}", (string model, string version, CatalogView catalog, HttpContext context) =>
            Metadata(catalog.Current, model, version, TenantContext.Of(context).Id));
        v2.MapGet("/models/{model}/ready", (string model, CatalogView catalog, HttpContext context) =>
            Ready(catalog.Current, model, null, TenantContext.Of(context).Id));
        v2.MapGet("/models/{model}/versions/{version}/ready", (string model, string version, CatalogView catalog, HttpContext context) =>
            Ready(catalog.Current, model, version, TenantContext.Of(context).Id));
        v2.MapPost("/models/{model}/infer", (string model, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog) =>
            InferAsync(model, null, context, client, bodies, catalog));
        v2.MapPost("/models/{model}/versions/{version}/infer", (string model, string version, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog) =>
            InferAsync(model, version, context, client, bodies, catalog));
        return app;
    }

    private static IResult Metadata(CatalogState catalog, string model, string? version, string tenant)
    {
        var (metadata, error) = OipModels.Metadata(catalog, model, version, tenant);
        return metadata is null
            ? ErrorTable.Oip(error!)
            : Results.Json(new
            {
                name = metadata.Name,
                versions = metadata.Versions,
                platform = metadata.Platform,
                inputs = metadata.Inputs.Select(Describe).ToArray(),
                outputs = metadata.Outputs.Select(Describe).ToArray(),
            });
    }

    private static IResult Ready(CatalogState catalog, string model, string? version, string tenant)
    {
        var (ready, error) = OipModels.Ready(catalog, model, version, tenant);
        return error is not null
            ? ErrorTable.Oip(error)
            : Results.Json(new { name = model, ready }, statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }

    private static async Task<IResult> InferAsync(
        string model, string? version, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog)
    {
        OipRequest? parsed = null;
        var (succeeded, error) = await InferenceCall.RunAsync(context, model, version, catalog, client, async (request, cancellation) =>
        {
            var (body, problem) = await bodies.ReadAsync(request, cancellation);
            if (problem is not null)
            {
                return problem;
            }

            if (JsonLength(request, body!.Length) is not { } jsonLength)
            {
                return new ServeError(ServeErrorKind.BadInput,
                    $"{HeaderLengthHeader} must be a whole number of bytes between 0 and the body's length ({body.Length})");
            }

            try
            {
                using var document = JsonDocument.Parse(body.AsMemory(0, jsonLength), OipJson.DocumentOptions);
                parsed = OipJson.ReadRequest(document.RootElement, TensorLimits.Default, body.AsMemory(jsonLength));
                return new TensorInput(parsed.Inputs, parsed.RequestedOutputs);
            }
            catch (JsonException failure)
            {
                return ServeErrors.InvalidJsonBody(failure.Message);
            }
            catch (TensorFormatException failure)
            {
                return new ServeError(ServeErrorKind.BadInput, failure.Message);
            }
        }, ErrorTable.Oip);
        if (succeeded is null)
        {
            return error!;
        }

        var servedVersion = OipModels.ServedVersion(succeeded, version);
        var outputs = OutputTensors(succeeded.Output);
        var binary = outputs.Where(o => parsed!.WantsBinary(o.Name)).ToList();

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name", model);
            if (servedVersion is not null)
            {
                writer.WriteString("model_version", servedVersion);
            }

            if (parsed!.Id is not null)
            {
                writer.WriteString("id", parsed.Id);
            }

            OipJson.WriteOutputs(writer, outputs, binary.Contains);
            writer.WriteEndObject();
        }

        var jsonBytes = buffer.WrittenCount;
        var total = jsonBytes + binary.Sum(o => o.Data.LongLength);
        if (bodies.RefuseResponse(total) is { } tooLarge)
        {
            return ErrorTable.Oip(tooLarge);
        }

        if (binary.Count == 0)
        {
            return Results.Bytes(buffer.WrittenSpan.ToArray(), "application/json");
        }

        var body = new byte[total];
        buffer.WrittenSpan.CopyTo(body);
        var offset = jsonBytes;
        foreach (var output in binary)
        {
            output.Data.CopyTo(body, offset);
            offset += output.Data.Length;
        }

        context.Response.Headers[HeaderLengthHeader] = jsonBytes.ToString(CultureInfo.InvariantCulture);
        return Results.Bytes(body, "application/octet-stream");
    }

    /// <summary>The model's outputs as tensors; a document (a handler's JSON) becomes one BYTES element.</summary>
    public static NamedTensor[] OutputTensors(InferenceOutput output) => output switch
    {
        TensorOutput tensors => tensors.Tensors,
        DocumentOutput document => [new NamedTensor("output__0", TensorDataType.BYTES, [1], TensorShapes.WriteBytesElements([document.Body]))],
        var other => throw new InvalidOperationException($"unexpected output {other.GetType().Name}"),
    };

    /// <summary>How many leading bytes of the body are JSON: all without the binary extension, null when the header is wrong.</summary>
    private static int? JsonLength(HttpRequest request, int bodyLength)
    {
        if (!request.Headers.TryGetValue(HeaderLengthHeader, out var header))
        {
            return bodyLength;
        }

        return int.TryParse(header, NumberStyles.None, CultureInfo.InvariantCulture, out var length) && length <= bodyLength
            ? length
            : null;
    }

    private static object Describe(TensorSpec spec) => new { name = spec.Name, datatype = spec.DataType.ToString(), shape = spec.Shape };
}
