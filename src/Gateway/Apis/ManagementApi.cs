using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Archive;
using Serve.Gateway.Hosting;
using Serve.Gateway.Management;

namespace Serve.Gateway.Apis;

/// <summary>
/// TorchServe's management API on the management listener: register, scale, describe, list, unregister,
/// set the default version. Registering and unregistering are refused (405) unless the model API is
/// enabled, as in TorchServe. Models are registered from TorchScript files, archives or archive
/// directories in the model store, or from allowed URLs. Placement and the cluster are in <see cref="PlacementApi"/>.
/// </summary>
public static class ManagementApi
{
    private const int MaxPage = 100;

    public static IEndpointRouteBuilder MapManagementApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/models").OnListener(ListenerKind.Management);
        api.MapGet(string.Empty, List);
        api.MapPost(string.Empty, RegisterAsync);
        api.MapGet("/{model}", (string model, CatalogView catalog) => Describe(catalog.Current, model, null));
        api.MapGet("/{model}/{version}", (string model, string version, CatalogView catalog) => Describe(catalog.Current, model, version));
        api.MapPut("/{model}", (string model, HttpRequest request, IManagementClient client) => ScaleAsync(model, null, request, client));
        api.MapPut("/{model}/{version}", (string model, string version, HttpRequest request, IManagementClient client) =>
            ScaleAsync(model, version, request, client));
        api.MapDelete("/{model}", (string model, IManagementClient client, IOptions<GatewayOptions> options, CancellationToken cancellation) =>
            UnregisterAsync(model, null, client, options.Value, cancellation));
        api.MapDelete("/{model}/{version}", (string model, string version, IManagementClient client, IOptions<GatewayOptions> options, CancellationToken cancellation) =>
            UnregisterAsync(model, version, client, options.Value, cancellation));
        api.MapPut("/{model}/{version}/set-default", async (string model, string version, IManagementClient client, CancellationToken cancellation) =>
            Answer(await client.SendAsync(new SetDefaultVersion(model, version), cancellation)));
        return app;
    }

    private static IResult List(HttpRequest request, CatalogView catalog)
    {
        var limit = IntQuery(request, "limit") is { } l and > 0 and <= MaxPage ? l : MaxPage;
        var offset = Math.Max(0, IntQuery(request, "next_page_token") ?? 0);
        var defaults = catalog.Current.Entries.Where(e => e.IsDefault).OrderBy(e => e.Definition.Name, StringComparer.Ordinal).ToList();
        var page = defaults.Skip(offset).Take(limit).Select(e => new { modelName = e.Definition.Name, modelUrl = ModelUrl(e.Definition) }).ToList();
        return offset + limit < defaults.Count
            ? Results.Json(new { nextPageToken = (offset + limit).ToString(CultureInfo.InvariantCulture), models = page })
            : Results.Json(new { models = page });
    }

    private static IResult Describe(CatalogState catalog, string model, string? version)
    {
        var versions = catalog.VersionsOf(model);
        if (versions.Count == 0)
        {
            return ErrorTable.TorchServe(new ServeError(ServeErrorKind.NotFound, $"Model not found: {model}"));
        }

        IEnumerable<CatalogEntry> chosen = version switch
        {
            "all" => versions,
            null => versions.Where(e => e.IsDefault),
            _ => versions.Where(e => e.Definition.Version == version),
        };
        var entries = chosen.ToList();
        return entries.Count == 0
            ? ErrorTable.TorchServe(new ServeError(ServeErrorKind.NotFound, $"Model version: {version} does not exist for model: {model}"))
            : Results.Json(entries.Select(e => DescribeEntry(e, catalog)).ToArray());
    }

    private static object DescribeEntry(CatalogEntry entry, CatalogState catalog)
    {
        var d = entry.Definition;
        return new
        {
            modelName = d.Name,
            modelVersion = d.Version,
            modelUrl = ModelUrl(d),
            runtime = "serve",
            minWorkers = d.Replicas,
            maxWorkers = d.Replicas,
            batchSize = d.BatchSize,
            maxBatchDelay = d.MaxBatchDelayMs,
            responseTimeout = d.ResponseTimeoutSeconds,
            jobQueueSize = d.JobQueueSize,
            handler = d.Handler,
            isDefault = entry.IsDefault,
            deviceType = entry.Replicas.Any(r => r.Device.StartsWith("cuda", StringComparison.Ordinal)) ? "gpu" : "cpu",
            deviceMemoryMb = d.DeviceMemoryMb,
            placement = new { nodes = d.Placement.Nodes, devices = d.Placement.Devices, spread = d.Placement.Spread },
            unplaced = entry.Unplaced,
            workers = entry.Replicas.OrderBy(r => r.Replica.Index).Select(r => new
            {
                id = r.Replica.EntityId,
                startTime = r.SinceUtc,
                // A replica whose node cannot be reached serves nobody, whatever it last reported.
                status = catalog.IsAvailable(r) ? r.State.ToString().ToUpperInvariant() : "UNREACHABLE",
                gpu = r.Device.StartsWith("cuda", StringComparison.Ordinal),
                memoryUsage = r.MemoryBytes >= 0 ? r.MemoryBytes : (long?)null,
                node = r.NodeAddress,
                nodeName = catalog.Snapshot.Nodes.FirstOrDefault(n => n.Address == r.NodeAddress)?.Name,
                device = r.Device,
                retiring = entry.Assignments.Any(a => a.Index == r.Replica.Index && a.Retiring),
                restarts = r.Restarts,
                lastError = r.LastError,
            }).ToArray(),
        };
    }

    private static async Task<IResult> RegisterAsync(
        HttpRequest request, IManagementClient client, ModelDownloads downloads, IOptions<GatewayOptions> options, CancellationToken cancellation)
    {
        var settings = options.Value;
        if (!settings.EnableModelApi)
        {
            return ModelApiDisabled();
        }

        var (parameters, problem) = await RegisterParameters.ReadAsync(request, cancellation);
        if (problem is not null)
        {
            return ErrorTable.TorchServe(problem);
        }

        if (parameters!.CheckUrl(settings) is { } badUrl)
        {
            return ErrorTable.TorchServe(badUrl);
        }

        var (file, unavailable) = await downloads.ResolveAsync(parameters.Url!, cancellation);
        if (unavailable is not null)
        {
            return ErrorTable.TorchServe(unavailable);
        }

        var (model, refused) = parameters.ToDefinition(file!.FileName, settings);
        var result = refused is null
            ? await client.SendAsync(new RegisterModel(model!.Definition), CancellationToken.None)
            : RegistryResult.Refused(refused.Kind, refused.Message);
        if (result.Error is not null)
        {
            // Nothing half-registered: what was downloaded or unpacked for a refused registration goes.
            model?.Discard();
            downloads.Discard(file);
            return Answer(result);
        }

        var definition = model!.Definition;
        if (definition.Replicas == 0)
        {
            return Answer(result);
        }

        if (!parameters.Synchronous)
        {
            return Results.Json(new { status = "Processing worker updates..." }, statusCode: StatusCodes.Status202Accepted);
        }

        var started = await client.WaitForReplicasAsync(definition.Key, definition.Replicas, StartupTimeout(settings), cancellation);
        if (started.Ready)
        {
            return Answer(result);
        }

        // As TorchServe: a synchronous registration whose workers do not start is undone. A model file the
        // workers refused is the registrant's to fix (400, with the reason); anything else is TorchServe's 500.
        await client.SendAsync(new UnregisterModel(definition.Name, definition.Version), CancellationToken.None);
        model.Discard();
        downloads.Discard(file);
        return ErrorTable.TorchServe(started.Refusal is { } refusal
            ? new ServeError(ServeErrorKind.BadInput, $"Model {definition.Name} version {definition.Version} was not registered: {refusal}")
            : new ServeError(ServeErrorKind.Internal, $"Failed to start workers for model {definition.Name} version: {definition.Version}"));
    }

    private static async Task<IResult> ScaleAsync(string model, string? version, HttpRequest request, IManagementClient client)
    {
        var cancellation = request.HttpContext.RequestAborted;
        if (MalformedInteger(request, "min_worker", "max_worker") is { } malformed)
        {
            return ErrorTable.TorchServe(malformed);
        }

        var min = IntQuery(request, "min_worker") ?? 1;
        var max = IntQuery(request, "max_worker") ?? min;
        if (max < min)
        {
            return ErrorTable.TorchServe(new ServeError(ServeErrorKind.BadInput, "max_worker cannot be less than min_worker."));
        }

        var result = await client.SendAsync(new ScaleModel(model, version, min), cancellation);
        if (result.Error is not null)
        {
            return Answer(result);
        }

        if (!BoolQuery(request, "synchronous", fallback: false))
        {
            return Results.Json(new { status = "Processing worker updates..." }, statusCode: StatusCodes.Status202Accepted);
        }

        var key = new ModelKey(model, version ?? string.Empty);
        if (version is null && request.HttpContext.RequestServices.GetRequiredService<CatalogView>().Current.Find(model, null) is { } entry)
        {
            key = entry.Definition.Key;
        }

        var settings = request.HttpContext.RequestServices.GetRequiredService<IOptions<GatewayOptions>>().Value;
        return (await client.WaitForReplicasAsync(key, min, StartupTimeout(settings), cancellation)).Ready
            ? Answer(result)
            : Results.Json(new { status = "Workers scaling in progress..." }, statusCode: StatusCodes.Status206PartialContent);
    }

    private static async Task<IResult> UnregisterAsync(
        string model, string? version, IManagementClient client, GatewayOptions options, CancellationToken cancellation) =>
        options.EnableModelApi
            ? Answer(await client.SendAsync(new UnregisterModel(model, version), cancellation))
            : ModelApiDisabled();

    private static TimeSpan StartupTimeout(GatewayOptions options) => TimeSpan.FromSeconds(options.DefaultStartupTimeout);

    private static IResult Answer(RegistryResult result) =>
        result.Error is { } error ? ErrorTable.TorchServe(error) : Results.Json(new { status = result.Message });

    private static IResult ModelApiDisabled() => ErrorTable.TorchServe(new ServeError(ServeErrorKind.Disabled,
        "Registering and unregistering models is disabled on this server. Enable it with enable_model_api=true " +
        "(Serve:EnableModelApi, environment Serve__EnableModelApi=true) if clients of the management API may change the models."));

    private static string ModelUrl(ModelDefinition definition) => definition.Url ?? definition.Source switch
    {
        TorchScriptSource script => Path.GetFileName(script.Path),
        BuiltInSource builtIn => $"builtin:{builtIn.Architecture}",
        _ => string.Empty,
    };

    private static ServeError? MalformedInteger(HttpRequest request, params string[] names) =>
        names.Where(n => request.Query.ContainsKey(n) && IntQuery(request, n) is null)
            .Select(n => new ServeError(ServeErrorKind.BadInput, $"{n} must be an integer, not '{request.Query[n]}'"))
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
    int? InitialWorkers, int? ResponseTimeout, bool Synchronous, PlacementSettings Placement)
{
    public static async Task<(RegisterParameters? Parameters, ServeError? Error)> ReadAsync(HttpRequest request, CancellationToken cancellation)
    {
        var values = request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal);
        if (request.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) == true)
        {
            try
            {
                using var document = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 8 }, cancellation);
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    return (null, new ServeError(ServeErrorKind.BadInput, "The request body must be a JSON object of register parameters"));
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
                return (null, new ServeError(ServeErrorKind.BadInput, $"The request body is not valid JSON: {error.Message}"));
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

        var parameters = new RegisterParameters(
            values.GetValueOrDefault("url"), values.GetValueOrDefault("model_name"), values.GetValueOrDefault("model_version"),
            values.GetValueOrDefault("handler"), Int("batch_size"), Int("max_batch_delay"), Int("initial_workers"),
            Int("response_timeout"),
            !values.TryGetValue("synchronous", out var sync) || !bool.TryParse(sync, out var synchronous) || synchronous,
            PlacementSettings.Read(values.GetValueOrDefault, problems));
        return problems.Count > 0
            ? (null, new ServeError(ServeErrorKind.BadInput, string.Join("; ", problems)))
            : (parameters, null);
    }

    /// <summary>Why <see cref="Url"/> cannot name a model (checked before anything is fetched); null when it can.</summary>
    public ServeError? CheckUrl(GatewayOptions options)
    {
        if (string.IsNullOrWhiteSpace(Url))
        {
            return new ServeError(ServeErrorKind.BadInput, "Parameter url is required.");
        }

        var isUrl = ModelDownloads.IsUrl(Url);
        if (!isUrl && (Url.Contains("..", StringComparison.Ordinal) || Url.Contains('/', StringComparison.Ordinal) || Url.Contains('\\', StringComparison.Ordinal)))
        {
            return new ServeError(ServeErrorKind.NotFound, $"Relative path is not allowed in url: {Url}");
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
    public (DefinedModel? Model, ServeError? Error) ToDefinition(string fileName, GatewayOptions options)
    {
        var full = options.ModelStore is null ? null : Path.Combine(options.ModelStore, fileName);
        if (full is null || (!File.Exists(full) && !Directory.Exists(full)))
        {
            return (null, new ServeError(ServeErrorKind.NotFound, $"Model not found at: {Url}"));
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
            }, options);
        }
        catch (ArchiveException error)
        {
            return (null, new ServeError(ServeErrorKind.BadInput, $"{Url}: {error.Message}"));
        }

        var problems = model.Definition.Validate();
        if (problems.Count > 0)
        {
            model.Discard();
            return (null, new ServeError(ServeErrorKind.BadInput, string.Join("; ", problems)));
        }

        return (model with { Definition = model.Definition with { Url = Url } }, null);
    }
}
