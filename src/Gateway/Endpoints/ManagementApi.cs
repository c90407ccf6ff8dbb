using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Archive;
using Serve.Gateway.Hosting;
using Serve.Gateway.Management;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// TorchServe's management API on the management listener: register, scale, describe, list, unregister,
/// set the default version. The HTTP side only reads parameters and renders outcomes; what each call does
/// is in <see cref="ManagementOperations"/>, shared with gRPC. Placement and the cluster are in <see cref="PlacementApi"/>.
/// </summary>
public static class ManagementApi
{
    public static IEndpointRouteBuilder MapManagementApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/models").OnListener(ListenerKind.Management);
        api.MapGet(string.Empty, (HttpRequest request, ManagementOperations operations) =>
            Malformed(request, integers: ["limit", "next_page_token"]) is { } malformed
                ? ManagementOutcome.Failed(malformed).ToResult()
                : operations.List(IntQuery(request, "limit"), IntQuery(request, "next_page_token")).ToResult());
        api.MapPost(string.Empty, RegisterAsync);
        api.MapGet("/{model}", (string model, ManagementOperations operations) => operations.Describe(model, null).ToResult());
        api.MapGet("/{model}/{version}", (string model, string version, ManagementOperations operations) =>
            operations.Describe(model, version).ToResult());
        api.MapPut("/{model}", (string model, HttpRequest request, ManagementOperations operations) => ScaleAsync(model, null, request, operations));
        api.MapPut("/{model}/{version}", (string model, string version, HttpRequest request, ManagementOperations operations) =>
            ScaleAsync(model, version, request, operations));
        api.MapDelete("/{model}", async (string model, ManagementOperations operations, CancellationToken cancellation) =>
            (await operations.UnregisterAsync(model, null, cancellation)).ToResult());
        api.MapDelete("/{model}/{version}", async (string model, string version, ManagementOperations operations, CancellationToken cancellation) =>
            (await operations.UnregisterAsync(model, version, cancellation)).ToResult());
        api.MapPut("/{model}/{version}/set-default", async (string model, string version, ManagementOperations operations, CancellationToken cancellation) =>
            (await operations.SetDefaultAsync(model, version, cancellation)).ToResult());
        return app;
    }

    private static async Task<IResult> RegisterAsync(HttpRequest request, ManagementOperations operations, CancellationToken cancellation)
    {
        // Refused before the body is read, as every other refusal of a disabled model API.
        if (operations.RefuseModelApi() is { } disabled)
        {
            return disabled.ToResult();
        }

        var (parameters, problem) = await RegisterParameters.ReadAsync(request, cancellation);
        return problem is not null
            ? ManagementOutcome.Failed(problem).ToResult()
            : (await operations.RegisterAsync(parameters!, cancellation)).ToResult();
    }

    private static async Task<IResult> ScaleAsync(string model, string? version, HttpRequest request, ManagementOperations operations)
    {
        if (Malformed(request, integers: ["min_worker", "max_worker"], booleans: ["synchronous"]) is { } malformed)
        {
            return ManagementOutcome.Failed(malformed).ToResult();
        }

        var min = IntQuery(request, "min_worker") ?? 1;
        var max = IntQuery(request, "max_worker") ?? min;
        var synchronous = BoolQuery(request, "synchronous", fallback: false);
        return (await operations.ScaleAsync(model, version, min, max, synchronous, request.HttpContext.RequestAborted)).ToResult();
    }

    /// <summary>
    /// The first query parameter that is given but is not what it must be: TorchServe falls back to its
    /// default for such values, Serve says which parameter was wrong (400).
    /// </summary>
    internal static ServeError? Malformed(HttpRequest request, string[]? integers = null, string[]? booleans = null) =>
        (integers ?? []).Where(n => request.Query.ContainsKey(n) && IntQuery(request, n) is null)
            .Select(n => new ServeError(ServeErrorKind.BadInput, $"{n} must be an integer, not '{request.Query[n]}'"))
            .Concat((booleans ?? []).Where(n => request.Query.ContainsKey(n) && !bool.TryParse(request.Query[n], out _))
                .Select(n => new ServeError(ServeErrorKind.BadInput, $"{n} must be true or false, not '{request.Query[n]}'")))
            .FirstOrDefault();

    internal static int? IntQuery(HttpRequest request, string name) =>
        int.TryParse(request.Query[name], NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;

    internal static bool BoolQuery(HttpRequest request, string name, bool fallback) =>
        bool.TryParse(request.Query[name], out var value) ? value : fallback;
}

/// <summary>
/// TorchServe's register parameters, from the query string or a JSON body with the same names, and Serve's
/// placement parameters (<see cref="PlacementSettings"/>).
/// </summary>
public sealed record RegisterParameters(
    string? Url, string? ModelName, string? ModelVersion, string? Handler, int? BatchSize, int? MaxBatchDelay,
    int? InitialWorkers, int? ResponseTimeout, int? StartupTimeout, bool Synchronous, PlacementSettings Placement)
{
    /// <summary>Serve's <c>sha256</c>: the hex SHA-256 the model file or .mar must have (<see cref="ArchivePin"/>).</summary>
    public string? Sha256 { get; init; }

    /// <summary>Serve's <c>tenant</c>: the tenant that owns the model (default: the admin tenant).</summary>
    public string? Tenant { get; init; }

    /// <summary>Serve's <c>shared_with</c>: other tenants that may call it, comma-separated.</summary>
    public string? SharedWith { get; init; }

    /// <summary>TorchServe's <c>runtime</c>: checked against <see cref="Runtimes"/>; Serve runs every model the same way.</summary>
    public string? Runtime { get; init; }

    /// <summary>TorchServe's runtime types (its <c>RuntimeType</c> values), and Serve's own.</summary>
    public static readonly string[] Runtimes = ["python", "python3", "LSP", "serve"];

    /// <summary>TorchServe's refusal of a runtime it does not have; null when there is none to refuse.</summary>
    public ServeError? CheckRuntime() => Runtime is null || Runtimes.Contains(Runtime, StringComparer.Ordinal)
        ? null
        : ServeErrors.InvalidRuntime(Runtime);

    public static async Task<Result<RegisterParameters>> ReadAsync(HttpRequest request, CancellationToken cancellation)
    {
        var values = request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal);
        if (request.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) == true)
        {
            try
            {
                using var document = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 8 }, cancellation);
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    return new ServeError(ServeErrorKind.BadInput, "The request body must be a JSON object of register parameters");
                }

                foreach (var property in document.RootElement.EnumerateObject())
                {
                    values[property.Name] = property.Value.ValueKind switch
                    {
                        JsonValueKind.String => property.Value.GetString(),
                        // "nodes": ["a", "b"] means the same as nodes=a,b.
                        JsonValueKind.Array => string.Join(',', property.Value.EnumerateArray().Select(v =>
                            v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText())),
                        _ => property.Value.GetRawText(),
                    };
                }
            }
            catch (JsonException error)
            {
                return ServeErrors.InvalidJsonBody(error.Message);
            }
        }

        var problems = new List<string>();
        int? Int(string name)
        {
            if (!values.TryGetValue(name, out var text) || string.IsNullOrEmpty(text))
            {
                return null;
            }

            if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }

            problems.Add($"{name} must be an integer, not '{text}'");
            return null;
        }

        // TorchServe's -1 means "not given"; 0 is a real timeout (nothing is ready in no time).
        int? StartupTimeout()
        {
            var seconds = Int("startup_timeout");
            if (seconds < -1)
            {
                problems.Add($"startup_timeout must be a number of seconds, 0 or more (-1: the default), not {seconds}");
            }

            return seconds is >= 0 ? seconds : null;
        }

        // TorchServe's own "not given" values, which its clients may send: -1, and -100 for max_batch_delay.
        int? Given(string name, int notGiven) => Int(name) is { } value && value != notGiven ? value : null;

        bool Synchronous()
        {
            if (values.GetValueOrDefault("synchronous") is not { Length: > 0 } text)
            {
                return true;
            }

            if (bool.TryParse(text, out var synchronous))
            {
                return synchronous;
            }

            problems.Add($"synchronous must be true or false, not '{text}'");
            return true;
        }

        var parameters = new RegisterParameters(
            values.GetValueOrDefault("url"), values.GetValueOrDefault("model_name"), values.GetValueOrDefault("model_version"),
            values.GetValueOrDefault("handler"), Given("batch_size", -1), Given("max_batch_delay", -100), Int("initial_workers"),
            Given("response_timeout", -1), StartupTimeout(), Synchronous(),
            PlacementSettings.Read(values.GetValueOrDefault, problems))
        {
            Sha256 = values.GetValueOrDefault("sha256") is { Length: > 0 } pin ? pin : null,
            Tenant = values.GetValueOrDefault("tenant") is { Length: > 0 } tenant ? tenant : null,
            SharedWith = values.GetValueOrDefault("shared_with") is { Length: > 0 } shared ? shared : null,
            Runtime = values.GetValueOrDefault("runtime") is { Length: > 0 } runtime ? runtime : null,
        };
        if (parameters.Sha256 is { } sha256 && !ArchivePin.IsValid(sha256))
        {
            problems.Add($"sha256 must be the file's SHA-256 as 64 hexadecimal digits, not '{sha256}'");
        }

        return problems.Count > 0
            ? new ServeError(ServeErrorKind.BadInput, string.Join("; ", problems))
            : parameters;
    }

    /// <summary>Why <see cref="Url"/> cannot name a model (checked before anything is fetched); null when it can.</summary>
    public ServeError? CheckUrl(GatewayOptions options)
    {
        if (string.IsNullOrWhiteSpace(Url))
        {
            return ServeErrors.UrlRequired;
        }

        var isUrl = ModelDownloads.IsUrl(Url);
        if (!isUrl && (Url.Contains("..", StringComparison.Ordinal) || Url.Contains('/', StringComparison.Ordinal) || Url.Contains('\\', StringComparison.Ordinal)))
        {
            return ServeErrors.RelativePathInUrl(Url);
        }

        var path = isUrl && Uri.TryCreate(Url, UriKind.Absolute, out var uri) ? uri.AbsolutePath : Url;
        var extension = Path.GetExtension(path);
        return ModelFiles.TorchScriptExtensions.Contains(extension, StringComparer.OrdinalIgnoreCase)
               || extension.Equals(ModelFiles.ArchiveExtension, StringComparison.OrdinalIgnoreCase)
               || (!isUrl && options.ModelStore is not null && Directory.Exists(Path.Combine(options.ModelStore, Url)))
            ? null
            : new ServeError(ServeErrorKind.BadInput,
                $"{Url} is not a model Serve can load: give a TorchServe archive (.mar), an unpacked archive directory, " +
                "or a TorchScript file (.pt, .pth, .ts)");
    }

    /// <summary>The definition to register from <paramref name="fileName"/> in the model store, or why not.</summary>
    public Result<DefinedModel> ToDefinition(string fileName, GatewayOptions options)
    {
        var full = options.ModelStore is null ? null : Path.Combine(options.ModelStore, fileName);
        if (full is null || (!File.Exists(full) && !Directory.Exists(full)))
        {
            return ServeErrors.ModelFileNotFound(Url ?? fileName);
        }

        DefinedModel model;
        try
        {
            model = ModelFiles.Define(fileName, new GivenSettings
            {
                Name = ModelName,
                Version = ModelVersion,
                Handler = Handler,
                Replicas = InitialWorkers,
                BatchSize = BatchSize,
                MaxBatchDelay = MaxBatchDelay,
                ResponseTimeout = ResponseTimeout,
                Placement = Placement.IsEmpty ? null : Placement,
                Sha256 = Sha256,
            }, options);
        }
        catch (ArchiveException error)
        {
            return new ServeError(ServeErrorKind.BadInput, $"{Url}: {error.Message}");
        }

        var problems = model.Definition.Validate();
        if (problems.Count > 0)
        {
            model.Discard();
            return new ServeError(ServeErrorKind.BadInput, string.Join("; ", problems));
        }

        return model with
        {
            Definition = model.Definition with
            {
                Url = Url,
                Owner = Tenant ?? ModelDefinition.AdminTenant,
                SharedWith = string.Join(',', (SharedWith ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)),
            },
        };
    }
}
