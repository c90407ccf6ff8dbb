using System.Reflection;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serve.Gateway.Hosting;
using Serve.Gateway.Security;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// TorchServe's API description: <c>OPTIONS /</c> and <c>GET /api-description</c> answer, on each listener,
/// the OpenAPI 3.0 document of that listener's API (the raw document, as TorchServe sends it). The documents
/// are written by hand in <see cref="InferenceApiDescription"/>, <see cref="ManagementApiDescription"/> and
/// <see cref="MetricsApiDescription"/>, beside the endpoints they describe; a gateway test fails when a mapped
/// endpoint is missing from them.
/// </summary>
public static class ApiDescription
{
    public const string OpenApiVersion = "3.0.1";

    /// <summary>The assembly's informational version without its source revision, as OIP's server metadata has it.</summary>
    public static readonly string Version =
        typeof(ApiDescription).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] is { Length: > 0 } version
            ? version
            : "1.0";

    // Descriptions quote names; keep them readable (the body is JSON, never HTML).
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IEndpointRouteBuilder MapApiDescription(this IEndpointRouteBuilder app)
    {
        // The metrics listener describes its API only while it has one (TorchServe: no metrics server at all).
        var metrics = app.ServiceProvider.GetRequiredService<IOptions<GatewayOptions>>().Value.EnableMetricsApi;
        ListenerKind[] kinds = metrics ? [ListenerKind.Inference, ListenerKind.Management, ListenerKind.Metrics] : [ListenerKind.Inference, ListenerKind.Management];
        foreach (var kind in kinds)
        {
            // Built once: the document describes code, which does not change while the process runs.
            var body = JsonSerializer.SerializeToUtf8Bytes(Document(kind), Indented);
            var listener = app.MapGroup(string.Empty).OnListener(kind);
            // The API's shape is no secret (TorchServe answers it without a key too).
            listener.MapMethods("/", [HttpMethods.Options], () => Results.Bytes(body, "application/json")).WithoutKey();
            listener.MapGet("/api-description", () => Results.Bytes(body, "application/json")).WithoutKey();
        }

        return app;
    }

    /// <summary>The OpenAPI document of one listener's API.</summary>
    public static JsonObject Document(ListenerKind kind)
    {
        var paths = new JsonObject
        {
            ["/"] = new JsonObject { ["options"] = DescriptionOperation("apiDescription", "This document (TorchServe's OPTIONS /).") },
            ["/api-description"] = new JsonObject { ["get"] = DescriptionOperation("getApiDescription", "This document.") },
        };
        var schemas = new JsonObject();
        var title = kind switch
        {
            ListenerKind.Inference => InferenceApiDescription.Describe(paths, schemas),
            ListenerKind.Management => ManagementApiDescription.Describe(paths, schemas),
            ListenerKind.Metrics => MetricsApiDescription.Describe(paths),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "the gRPC listeners describe themselves with gRPC reflection"),
        };
        schemas["TorchServeError"] = OpenApi.Obj(["code", "type", "message"],
            ("code", OpenApi.Int("The HTTP status.")),
            ("type", OpenApi.Str("TorchServe's exception name, e.g. ModelNotFoundException.")),
            ("message", OpenApi.Str("What went wrong.")));
        schemas["ApiDescription"] = OpenApi.Obj(["openapi", "info", "paths"],
            ("openapi", OpenApi.Str("The OpenAPI version.")),
            ("info", OpenApi.FreeObject("Title and version.")),
            ("paths", OpenApi.FreeObject("The operations.")));
        schemas["Status"] = OpenApi.Obj(["status"], ("status", OpenApi.Str("What happened, in words.")));

        return new JsonObject
        {
            ["openapi"] = OpenApiVersion,
            ["info"] = new JsonObject
            {
                ["title"] = title,
                ["description"] = "Serve answers TorchServe's HTTP APIs on a cluster of nodes. This document describes the API of the listener that sent it.",
                ["version"] = Version,
            },
            ["paths"] = paths,
            ["components"] = new JsonObject
            {
                ["schemas"] = schemas,
                ["securitySchemes"] = new JsonObject
                {
                    ["bearer"] = new JsonObject
                    {
                        ["type"] = "http",
                        ["scheme"] = "bearer",
                        ["description"] = "The key for this API from the server's key_file.json (inference or management; API for /token).",
                    },
                },
            },
            // Every operation needs a key unless it says otherwise (health and these descriptions do).
            ["security"] = new JsonArray(new JsonObject { ["bearer"] = new JsonArray() }),
        };
    }

    private static JsonObject DescriptionOperation(string operationId, string summary) => OpenApi.WithoutKey(OpenApi.Operation(operationId, summary, [],
        (200, OpenApi.Json("The OpenAPI document of this listener's API.", OpenApi.Ref("ApiDescription")))));
}

/// <summary>Small builders for the hand-written OpenAPI 3.0 documents (each call makes new nodes).</summary>
internal static class OpenApi
{
    public static JsonObject Ref(string schema) => new() { ["$ref"] = $"#/components/schemas/{schema}" };

    /// <summary>Marks an operation as answered without a key.</summary>
    public static JsonObject WithoutKey(JsonObject operation)
    {
        operation["security"] = new JsonArray();
        return operation;
    }

    public static JsonObject Str(string description) => new() { ["type"] = "string", ["description"] = description };

    public static JsonObject Int(string description, string format = "int32") =>
        new() { ["type"] = "integer", ["format"] = format, ["description"] = description };

    public static JsonObject Bool(string description) => new() { ["type"] = "boolean", ["description"] = description };

    public static JsonObject StringEnum(string description, IEnumerable<string> values) =>
        new() { ["type"] = "string", ["description"] = description, ["enum"] = new JsonArray([.. values.Select(v => JsonValue.Create(v))]) };

    public static JsonObject ArrayOf(JsonNode items, string description) => new() { ["type"] = "array", ["items"] = items, ["description"] = description };

    /// <summary>Any JSON value (OpenAPI 3.0 has no "any" type: a schema without one).</summary>
    public static JsonObject AnyJson(string description) => new() { ["description"] = description };

    public static JsonObject FreeObject(string description) =>
        new() { ["type"] = "object", ["additionalProperties"] = true, ["description"] = description };

    public static JsonObject OrNull(JsonObject schema)
    {
        schema["nullable"] = true;
        return schema;
    }

    public static JsonObject Obj(string[] required, params (string Name, JsonObject Schema)[] properties)
    {
        var schema = new JsonObject { ["type"] = "object" };
        if (required.Length > 0)
        {
            schema["required"] = new JsonArray([.. required.Select(r => JsonValue.Create(r))]);
        }

        schema["properties"] = new JsonObject(properties.Select(p => KeyValuePair.Create(p.Name, (JsonNode?)p.Schema)));
        return schema;
    }

    public static JsonObject PathParameter(string name, string description) => new()
    {
        ["name"] = name, ["in"] = "path", ["required"] = true, ["description"] = description, ["schema"] = new JsonObject { ["type"] = "string" },
    };

    public static JsonObject Query(string name, JsonObject schema, bool required = false)
    {
        var description = schema["description"]?.GetValue<string>();
        schema.Remove("description");
        return new JsonObject { ["name"] = name, ["in"] = "query", ["required"] = required, ["description"] = description, ["schema"] = schema };
    }

    /// <summary>TorchServe's error body, <c>{"code", "type", "message"}</c>.</summary>
    public static JsonObject TorchServeError(string description) => Json(description, Ref("TorchServeError"));

    /// <summary>TorchServe's success body, <c>{"status"}</c>.</summary>
    public static JsonObject Status(string description) => Json(description, Ref("Status"));

    public static JsonObject Json(string description, JsonObject schema) => new()
    {
        ["description"] = description,
        ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = schema } },
    };

    public static JsonObject Operation(string operationId, string summary, JsonNode?[] parameters, params (int Status, JsonObject Response)[] responses) =>
        Operation(operationId, summary, parameters, null, responses);

    public static JsonObject Operation(string operationId, string summary, JsonNode?[] parameters, JsonObject? requestBody,
        params (int Status, JsonObject Response)[] responses)
    {
        var operation = new JsonObject
        {
            ["operationId"] = operationId,
            ["summary"] = summary,
            ["parameters"] = new JsonArray(parameters),
        };
        if (requestBody is not null)
        {
            operation["requestBody"] = requestBody;
        }

        operation["responses"] = new JsonObject(responses.Select(r =>
            KeyValuePair.Create(r.Status.ToString(System.Globalization.CultureInfo.InvariantCulture), (JsonNode?)r.Response)));
        return operation;
    }
}
