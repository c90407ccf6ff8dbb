using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi.Extensions;
using Microsoft.OpenApi.Models;
using Microsoft.OpenApi.Readers;
using Microsoft.OpenApi.Validations;
using Serve.Gateway.Hosting;

namespace Serve.Standalone.Tests;

/// <summary>
/// TorchServe's API description (<c>OPTIONS /</c>, <c>GET /api-description</c>) on each listener: a valid
/// OpenAPI 3.0 document of that listener's API, read as a client generator would, that describes every
/// endpoint mapped on the listener.
/// </summary>
public sealed partial class ApiDescriptionTests(ApiDescriptionTests.Factory serve) : IClassFixture<ApiDescriptionTests.Factory>
{
    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() => [new("Serve:LoadModels", "linrelu=linrelu.pt")];
    }

    private static readonly string[] InferencePaths =
        ["/ping", "/predictions/{model_name}", "/predictions/{model_name}/{model_version}", "/v2", "/v2/health/ready", "/v2/models/{model_name}/infer"];

    private static readonly string[] ManagementPaths =
        ["/models", "/models/{model_name}", "/models/{model_name}/{model_version}/set-default", "/models/{model_name}/{model_version}/placement", "/cluster"];

    private static readonly string[] MetricsPaths = ["/metrics"];

    private static readonly Dictionary<int, (ListenerKind Listener, string[] Paths)> ByPort = new()
    {
        [8080] = (ListenerKind.Inference, InferencePaths),
        [8081] = (ListenerKind.Management, ManagementPaths),
        [8082] = (ListenerKind.Metrics, MetricsPaths),
    };

    public static TheoryData<int, string> Requests() => new()
    {
        { 8080, "OPTIONS /" }, { 8080, "GET /api-description" }, { 8081, "OPTIONS /" }, { 8081, "GET /api-description" },
        { 8082, "OPTIONS /" }, { 8082, "GET /api-description" },
    };

    private HttpClient Client(int port) => port switch
    {
        8080 => serve.Inference(),
        8081 => serve.Management(),
        _ => serve.Metrics(),
    };

    private static async Task<(HttpResponseMessage Response, string Body)> Send(HttpClient client, string request)
    {
        var (method, path) = (request.Split(' ')[0], request.Split(' ')[1]);
        using var message = new HttpRequestMessage(new HttpMethod(method), path);
        var response = await client.SendAsync(message, TestContext.Current.CancellationToken);
        return (response, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task Each_listener_answers_the_openapi_document_of_its_own_api(int port, string request)
    {
        using var client = Client(port);
        var (response, body) = await Send(client, request);

        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{request} on {port}: {(int)response.StatusCode} {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(body);
        var root = document.RootElement;
        Assert.StartsWith("3.0.", root.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(root.GetProperty("info").GetProperty("version").GetString()), body);
        var paths = root.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToHashSet();
        var own = ByPort[port].Paths;
        Assert.Subset(paths, own.Append("/").Append("/api-description").ToHashSet());
        Assert.Empty(paths.Intersect(ByPort.Where(p => p.Key != port).SelectMany(p => p.Value.Paths)));
    }

    [Theory]
    [InlineData(8080)]
    [InlineData(8081)]
    [InlineData(8082)]
    public async Task Options_and_get_api_description_answer_the_same_document(int port)
    {
        using var client = Client(port);
        var (_, options) = await Send(client, "OPTIONS /");
        var (_, get) = await Send(client, "GET /api-description");
        Assert.Equal(options, get);
    }

    [Theory]
    [InlineData(8080)]
    [InlineData(8082)]
    public async Task Other_methods_on_the_root_are_405(int port)
    {
        using var client = Client(port);
        var (response, body) = await Send(client, "GET /");
        Assert.True(response.StatusCode == HttpStatusCode.MethodNotAllowed, $"GET / on {port}: {(int)response.StatusCode} {body}");
    }

    [Fact]
    public async Task The_metrics_description_needs_no_key_and_says_so()
    {
        using var metrics = serve.Metrics();
        var (response, body) = await Send(metrics, "OPTIONS /");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var document = new OpenApiStringReader().Read(body, out _);
        var get = document.Paths["/metrics"].Operations[OperationType.Get];
        Assert.Empty(get.Security);
        Assert.Equal("name[]", Assert.Single(get.Parameters).Name);
        Assert.Contains("text/plain", get.Responses["200"].Content.Keys);
    }

    [Theory]
    [InlineData(8080)]
    [InlineData(8081)]
    [InlineData(8082)]
    public async Task The_document_reads_as_OpenAPI_without_errors_or_warnings(int port)
    {
        using var client = Client(port);
        var (_, body) = await Send(client, "OPTIONS /");

        var document = new OpenApiStringReader(new OpenApiReaderSettings { RuleSet = ValidationRuleSet.GetDefaultRuleSet() })
            .Read(body, out var diagnostic);

        Assert.Equal(Microsoft.OpenApi.OpenApiSpecVersion.OpenApi3_0, diagnostic.SpecificationVersion);
        Assert.True(diagnostic.Errors.Count == 0, string.Join("\n", diagnostic.Errors.Select(e => $"{e.Pointer}: {e.Message}")));
        Assert.True(diagnostic.Warnings.Count == 0, string.Join("\n", diagnostic.Warnings.Select(e => $"{e.Pointer}: {e.Message}")));
        var problems = document.Validate(ValidationRuleSet.GetDefaultRuleSet()).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems.Select(e => $"{e.Pointer}: {e.Message}")));

        // What generators also need: one operationId per operation, unique, and every path parameter declared.
        var operations = document.Paths.SelectMany(p => p.Value.Operations.Select(o => (Path: p.Key, Method: o.Key, Operation: o.Value))).ToList();
        var ids = operations.Select(o => o.Operation.OperationId).ToList();
        Assert.All(ids, id => Assert.False(string.IsNullOrEmpty(id)));
        Assert.Empty(ids.GroupBy(id => id, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key));
        foreach (var (path, method, operation) in operations)
        {
            var inPath = TemplateParameter().Matches(path).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal);
            var declared = operation.Parameters.Where(p => p.In == ParameterLocation.Path).Select(p => p.Name).Order(StringComparer.Ordinal);
            Assert.True(inPath.SequenceEqual(declared), $"{method} {path}: path parameters {string.Join(",", declared)}");
            Assert.All(operation.Parameters, p => Assert.NotNull(p.Schema?.Type));
            Assert.NotEmpty(operation.Responses);
        }
    }

    [Fact]
    public async Task Schemas_carry_the_bodies_clients_read()
    {
        using var inference = serve.Inference();
        var (_, body) = await Send(inference, "OPTIONS /");
        var document = new OpenApiStringReader().Read(body, out _);
        var schemas = document.Components.Schemas;
        Assert.Equal(["code", "message", "type"], schemas["TorchServeError"].Required.Order(StringComparer.Ordinal));
        Assert.Equal(["error"], schemas["OipError"].Required);
        var input = schemas["RequestInput"];
        Assert.Subset(input.Properties.Keys.ToHashSet(), new HashSet<string> { "name", "datatype", "shape", "data", "parameters" });
        Assert.Contains(input.Properties["datatype"].Enum, e => e is Microsoft.OpenApi.Any.OpenApiString { Value: "FP32" });
        Assert.Equal(Enum.GetNames<Serve.Actors.Protocol.TensorDataType>().Length, input.Properties["datatype"].Enum.Count);
        Assert.Equal("InferenceResponse", Ok(document, "/v2/models/{model_name}/infer", OperationType.Post));

        using var management = serve.Management();
        (_, body) = await Send(management, "OPTIONS /");
        document = new OpenApiStringReader().Read(body, out _);
        schemas = document.Components.Schemas;
        Assert.Equal("ModelList", Ok(document, "/models", OperationType.Get));
        Assert.Equal("Cluster", Ok(document, "/cluster", OperationType.Get));
        Assert.Equal("Status", Ok(document, "/models/{model_name}/{model_version}/placement", OperationType.Put));
        Assert.Subset(schemas["Device"].Properties.Keys.ToHashSet(),
            new HashSet<string> { "name", "kind", "totalMemoryMb", "declaredMemoryMb", "usedMemoryMb", "replicas" });
        var register = document.Paths["/models"].Operations[OperationType.Post];
        Assert.Subset(register.Parameters.Select(p => p.Name).ToHashSet(),
            new HashSet<string> { "url", "model_name", "initial_workers", "synchronous", "device_memory_mb", "nodes", "devices", "spread" });
        Assert.Contains("507", register.Responses.Keys);
    }

    /// <summary>The name of the schema a 200 answers.</summary>
    private static string? Ok(OpenApiDocument document, string path, OperationType method) =>
        document.Paths[path].Operations[method].Responses["200"].Content["application/json"].Schema.Reference?.Id;

    [Fact]
    public async Task Every_endpoint_mapped_on_a_listener_is_described_there_and_nothing_else_is()
    {
        var mapped = serve.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<ListenerMetadata>()?.Kinds ?? []).Select(listener =>
                (Listener: listener, Methods: e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods, Path: Normalize(e.RoutePattern))))
            .Where(e => !Listeners.IsGrpc(e.Listener))
            .SelectMany(e => (e.Methods ?? []).Select(m => (e.Listener, Method: m.ToUpperInvariant(), e.Path)))
            .ToHashSet();
        Assert.NotEmpty(mapped);

        var described = new HashSet<(ListenerKind, string Method, string Path)>();
        foreach (var (port, (listener, _)) in ByPort)
        {
            using var client = Client(port);
            var (_, body) = await Send(client, "OPTIONS /");
            using var document = JsonDocument.Parse(body);
            foreach (var path in document.RootElement.GetProperty("paths").EnumerateObject())
            {
                foreach (var operation in path.Value.EnumerateObject())
                {
                    described.Add((listener, operation.Name.ToUpperInvariant(), TemplateParameter().Replace(path.Name, "{}")));
                }
            }
        }

        var undescribed = mapped.Except(described).ToList();
        Assert.True(undescribed.Count == 0, "mapped but not in the listener's API description (src/Gateway/Apis/*ApiDescription.cs): " +
                                            string.Join(", ", undescribed));
        var unmapped = described.Except(mapped).ToList();
        Assert.True(unmapped.Count == 0, "described but not mapped on that listener: " + string.Join(", ", unmapped));
    }

    /// <summary>A route as <c>/models/{}/{}</c>: parameter names and constraints are the code's business, not the client's.</summary>
    private static string Normalize(RoutePattern pattern) =>
        "/" + string.Join("/", pattern.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
        {
            RoutePatternLiteralPart literal => literal.Content,
            RoutePatternSeparatorPart separator => separator.Content,
            RoutePatternParameterPart => "{}",
            _ => throw new InvalidOperationException($"unexpected route part in {pattern.RawText}"),
        }))));

    [GeneratedRegex(@"\{([^}]+)\}")]
    private static partial Regex TemplateParameter();
}
