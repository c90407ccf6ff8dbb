using System.Buffers;
using System.Reflection;
using System.Text.Json;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Actors.Tensors;
using Serve.Gateway.Hosting;
using Serve.Gateway.Inference;

namespace Serve.Gateway.Apis;

/// <summary>
/// The Open Inference Protocol (KServe v2) REST API on the inference listener: health, server and model
/// metadata, model readiness and inference with JSON tensors, shaped as the protocol's specification says.
/// </summary>
public static class OipApi
{
    public const string ServerName = "serve";

    private static readonly string ServerVersion =
        typeof(OipApi).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static IEndpointRouteBuilder MapOipApi(this IEndpointRouteBuilder app)
    {
        var v2 = app.MapGroup("/v2").OnListener(ListenerKind.Inference);
        v2.MapGet("/health/live", () => Results.Json(new { live = true }));
        v2.MapGet("/health/ready", (CatalogView catalog) => catalog.Current.AllModelsReady
            ? Results.Json(new { ready = true })
            : Results.Json(new { ready = false }, statusCode: StatusCodes.Status503ServiceUnavailable));
        v2.MapGet(string.Empty, () => Results.Json(new { name = ServerName, version = ServerVersion, extensions = Array.Empty<string>() }));

        v2.MapGet("/models/{model}", (string model, CatalogView catalog) => Metadata(catalog.Current, model, null));
        v2.MapGet("/models/{model}/versions/{version}", (string model, string version, CatalogView catalog) => Metadata(catalog.Current, model, version));
        v2.MapGet("/models/{model}/ready", (string model, CatalogView catalog) => Ready(catalog.Current, model, null));
        v2.MapGet("/models/{model}/versions/{version}/ready", (string model, string version, CatalogView catalog) => Ready(catalog.Current, model, version));
        v2.MapPost("/models/{model}/infer", (string model, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog) =>
            InferAsync(model, null, context, client, bodies, catalog));
        v2.MapPost("/models/{model}/versions/{version}/infer", (string model, string version, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog) =>
            InferAsync(model, version, context, client, bodies, catalog));
        return app;
    }

    private static IResult Metadata(CatalogState catalog, string model, string? version)
    {
        if (ModelLookup.Find(catalog, model, version, out var found) is { } notFound)
        {
            return ErrorTable.Oip(notFound);
        }

        var entry = found!;

        var signature = entry.Replicas.Select(r => r.Signature).FirstOrDefault(s => s is not null);
        return Results.Json(new
        {
            name = model,
            versions = catalog.VersionsOf(model).Select(e => e.Definition.Version).ToArray(),
            platform = signature?.Platform ?? entry.Definition.Source.Platform,
            inputs = (signature?.Inputs ?? []).Select(Describe).ToArray(),
            outputs = (signature?.Outputs ?? []).Select(Describe).ToArray(),
        });
    }

    private static IResult Ready(CatalogState catalog, string model, string? version)
    {
        if (ModelLookup.Find(catalog, model, version, out var found) is { } notFound)
        {
            return ErrorTable.Oip(notFound);
        }

        var entry = found!;

        var ready = entry.Replicas.Any(r => r.State == ReplicaState.Ready && catalog.IsAvailable(r));
        return Results.Json(new { name = model, ready }, statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }

    private static async Task<IResult> InferAsync(
        string model, string? version, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog)
    {
        string? requestId = null;
        var (succeeded, error) = await InferenceCall.RunAsync(context, model, version, catalog, client, async (request, cancellation) =>
        {
            var (body, problem) = await bodies.ReadAsync(request, cancellation);
            if (problem is not null)
            {
                return (null, problem);
            }

            try
            {
                using var document = JsonDocument.Parse(body!, OipJson.DocumentOptions);
                var parsed = OipJson.ReadRequest(document.RootElement, TensorLimits.Default);
                requestId = parsed.Id;
                return (new TensorInput(parsed.Inputs, parsed.RequestedOutputs), null);
            }
            catch (JsonException failure)
            {
                return (null, new ServeError(ServeErrorKind.BadInput, $"The request body is not valid JSON: {failure.Message}"));
            }
            catch (TensorFormatException failure)
            {
                return (null, new ServeError(ServeErrorKind.BadInput, failure.Message));
            }
        }, ErrorTable.Oip);
        if (succeeded is null)
        {
            return error!;
        }

        var servedVersion = ReplicaId.TryParse(succeeded.Timing.Replica, out var replica) ? replica.Version : version;
        var outputs = succeeded.Output switch
        {
            TensorOutput tensors => tensors.Tensors,
            DocumentOutput document => [new NamedTensor("output__0", TensorDataType.BYTES, [1], TensorShapes.WriteBytesElements([document.Body]))],
            var other => throw new InvalidOperationException($"unexpected output {other.GetType().Name}"),
        };

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name", model);
            if (servedVersion is not null)
            {
                writer.WriteString("model_version", servedVersion);
            }

            if (requestId is not null)
            {
                writer.WriteString("id", requestId);
            }

            OipJson.WriteOutputs(writer, outputs);
            writer.WriteEndObject();
        }

        if (buffer.WrittenCount > bodies.MaxResponseSize)
        {
            return ErrorTable.Oip(new ServeError(ServeErrorKind.ResourceExhausted,
                $"The response is {buffer.WrittenCount} bytes, more than max_response_size ({bodies.MaxResponseSize} bytes)"));
        }

        return Results.Bytes(buffer.WrittenSpan.ToArray(), "application/json");
    }


    private static object Describe(TensorSpec spec) => new { name = spec.Name, datatype = spec.DataType.ToString(), shape = spec.Shape };
}
