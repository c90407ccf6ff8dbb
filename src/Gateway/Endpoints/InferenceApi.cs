using System.Text.Json;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Actors.Tensors;
using Serve.Gateway.Hosting;
using Serve.Gateway.Inference;
using Serve.Gateway.Security;

namespace Serve.Gateway.Endpoints;

/// <summary>TorchServe's inference API: <c>/ping</c> and <c>/predictions/{model}[/{version}]</c>.</summary>
public static class InferenceApi
{
    public static IEndpointRouteBuilder MapInferenceApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup(string.Empty).OnListener(ListenerKind.Inference);
        // Liveness answers without a key: it says only Healthy or Unhealthy, and probes carry no keys.
        api.MapGet("/ping", Ping).WithoutKey();
        // TorchServe does not check the method: its own docs upload with curl -T (PUT).
        string[] methods = [HttpMethods.Post, HttpMethods.Put];
        api.MapMethods("/predictions/{model}", methods, (string model, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog) =>
            PredictAsync(model, null, context, client, bodies, catalog));
        api.MapMethods("/predictions/{model}/{version}", methods, (string model, string version, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog) =>
            PredictAsync(model, version, context, client, bodies, catalog));
        return app;
    }

    /// <summary>Healthy unless a model's default version is left with only failed replicas (TorchServe's rule).</summary>
    private static IResult Ping(CatalogView catalog) =>
        catalog.Current.Healthy
            ? Results.Json(new { status = "Healthy" })
            : Results.Json(new { status = "Unhealthy" }, statusCode: StatusCodes.Status500InternalServerError);

    private static async Task<IResult> PredictAsync(
        string model, string? version, HttpContext context, IInferenceClient client, RequestBodies bodies, CatalogView catalog)
    {
        var (reply, error) = await InferenceCall.RunAsync(context, model, version, catalog, client,
            bodies.ReadTorchServeInputAsync, ErrorTable.TorchServe);
        if (reply is null)
        {
            return error!;
        }

        var (contentType, body) = PredictionBody(reply.Output);
        return bodies.RefuseResponse(body.LongLength) is { } tooLarge ? ErrorTable.TorchServe(tooLarge) : Results.Bytes(body, contentType);
    }

    /// <summary>
    /// What TorchServe's APIs (HTTP and gRPC) answer: a handler's document as it is; tensors as nested lists, or,
    /// for a request that named its inputs (an Open Inference Protocol body), as named outputs.
    /// </summary>
    public static (string ContentType, byte[] Body) PredictionBody(InferenceOutput output) => output switch
    {
        DocumentOutput document => (document.ContentType, document.Body),
        TensorOutput { NamedInputs: true } tensors => ("application/json", JsonBytes.Write(writer =>
        {
            writer.WriteStartObject();
            OipJson.WriteOutputs(writer, tensors.Tensors);
            writer.WriteEndObject();
        })),
        TensorOutput tensors => ("application/json", JsonBytes.Write(writer => WriteNestedLists(writer, tensors.Tensors))),
        var other => throw new InvalidOperationException($"unexpected output {other.GetType().Name}"),
    };

    /// <summary>TorchServe's tensor answer: one output as its nested list, several as a list of them.</summary>
    private static void WriteNestedLists(Utf8JsonWriter writer, NamedTensor[] tensors)
    {
        if (tensors.Length == 1)
        {
            TensorJson.WriteData(writer, tensors[0], nested: true);
            return;
        }

        writer.WriteStartArray();
        foreach (var tensor in tensors)
        {
            TensorJson.WriteData(writer, tensor, nested: true);
        }

        writer.WriteEndArray();
    }

}
