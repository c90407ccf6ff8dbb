using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Hosting;
using Serve.Gateway.Security;

namespace Serve.Gateway.Management;

/// <summary>
/// What a management call answers, whatever the protocol: a status and a JSON body, or a failure. HTTP
/// renders it as the status and body; gRPC as <c>ManagementResponse.msg</c> (the same JSON) or a status code.
/// </summary>
public sealed record ManagementOutcome(int Status, object? Body, ServeError? Error)
{
    private static readonly JsonSerializerOptions MessageJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static ManagementOutcome Ok(object body, int status = StatusCodes.Status200OK) => new(status, body, null);

    public static ManagementOutcome Says(string message, int status = StatusCodes.Status200OK) => new(status, new { status = message }, null);

    public static ManagementOutcome Failed(ServeError error) => new(ErrorTable.Http(error.Kind).Status, null, error);

    public static ManagementOutcome From(RegistryResult result) => result.Error is { } error ? Failed(error) : Says(result.Message);

    public IResult ToResult() => Error is { } error ? ErrorTable.TorchServe(error) : Results.Json(Body, statusCode: Status);

    /// <summary>The body as TorchServe's gRPC management API sends it (pretty-printed JSON).</summary>
    public string ToMessage() => Error is { } error
        ? throw new InvalidOperationException($"a failed outcome has no message: {error.Message}")
        : JsonSerializer.Serialize(Body, MessageJson);
}

/// <summary>
/// TorchServe's management operations (register, scale, describe, list, unregister, set the default
/// version) with their rules, shared by the HTTP and gRPC management APIs so both behave the same.
/// Registering and unregistering are refused unless the model API is enabled, as in TorchServe. Models are
/// registered from TorchScript files, archives or archive directories in the model store, or from allowed URLs.
/// </summary>
public sealed class ManagementOperations(
    IManagementClient client, CatalogView catalog, ModelDownloads downloads, IOptions<GatewayOptions> options, TenantDirectory tenants)
{
    private const int MaxPage = 100;

    private readonly GatewayOptions _settings = options.Value;

    /// <summary>Default-version models in name order, a page at a time; <paramref name="limit"/> outside 1..100 means 100.</summary>
    public ManagementOutcome List(int? limit, int? offset)
    {
        var pageSize = limit is { } l and > 0 and <= MaxPage ? l : MaxPage;
        var start = Math.Max(0, offset ?? 0);
        var defaults = catalog.Current.Entries.Where(e => e.IsDefault).OrderBy(e => e.Definition.Name, StringComparer.Ordinal).ToList();
        var page = defaults.Skip(start).Take(pageSize).Select(e => new { modelName = e.Definition.Name, modelUrl = ModelUrl(e.Definition) }).ToList();
        return start + pageSize < defaults.Count
            ? ManagementOutcome.Ok(new { nextPageToken = (start + pageSize).ToString(CultureInfo.InvariantCulture), models = page })
            : ManagementOutcome.Ok(new { models = page });
    }

    /// <summary>The default version (<paramref name="version"/> null), one version, or <c>all</c>.</summary>
    public ManagementOutcome Describe(string model, string? version)
    {
        var state = catalog.Current;
        var versions = state.VersionsOf(model);
        if (versions.Count == 0)
        {
            return ManagementOutcome.Failed(ServeErrors.ModelNotFound(model));
        }

        IEnumerable<CatalogEntry> chosen = version switch
        {
            "all" => versions,
            null => versions.Where(e => e.IsDefault),
            _ => versions.Where(e => e.Definition.Version == version),
        };
        var entries = chosen.ToList();
        return entries.Count == 0
            ? ManagementOutcome.Failed(ServeErrors.VersionNotFound(model, version ?? string.Empty))
            : ManagementOutcome.Ok(entries.Select(e => DescribeEntry(e, state)).ToArray());
    }

    /// <summary>The refusal when the model API is disabled; null when registering and unregistering are allowed.</summary>
    public ManagementOutcome? RefuseModelApi() => _settings.EnableModelApi
        ? null
        : ManagementOutcome.Failed(ServeErrors.ModelApiDisabled);

    public async Task<ManagementOutcome> RegisterAsync(RegisterParameters parameters, CancellationToken cancellation)
    {
        if (RefuseModelApi() is { } disabled)
        {
            return disabled;
        }

        if ((parameters.CheckRuntime() ?? parameters.CheckUrl(_settings)) is { } badParameter)
        {
            return ManagementOutcome.Failed(badParameter);
        }

        // The owner and those it shares with must be tenants this server knows, before anything is fetched.
        var owner = tenants.ById(parameters.Tenant ?? Tenant.AdminId);
        var unknown = (parameters.SharedWith ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Prepend(parameters.Tenant ?? Tenant.AdminId).FirstOrDefault(id => tenants.ById(id) is null);
        if (owner is null || unknown is not null)
        {
            return ManagementOutcome.Failed(new ServeError(ServeErrorKind.BadInput,
                $"tenant '{unknown ?? parameters.Tenant}' is not configured (Serve:Tenants); known: {string.Join(", ", tenants.Tenants.Select(t => t.Id).Prepend(Tenant.AdminId))}"));
        }

        var (file, unavailable) = await downloads.ResolveAsync(parameters.Url!, cancellation);
        if (unavailable is not null)
        {
            return ManagementOutcome.Failed(unavailable);
        }

        var (model, refused) = parameters.ToDefinition(file!.FileName, _settings);
        var outcome = refused is null
            ? await client.RegisterAsync(new RegisterModel(model!.Definition) { Limits = owner.Settings.Limits() }, CancellationToken.None)
            : new RegistrationOutcome(RegistryResult.Refused(refused.Kind, refused.Message), Definite: true);
        var result = outcome.Result;
        if (result.Error is not null)
        {
            // Nothing half-registered: what was downloaded or unpacked for a refused registration goes. Unless
            // nobody knows yet whether the registry applied it: then the files stay for the model that may be.
            if (outcome.Definite)
            {
                model?.Discard();
                downloads.Discard(file);
            }

            return ManagementOutcome.From(result);
        }

        var definition = model!.Definition;
        if (definition.Replicas == 0)
        {
            return ManagementOutcome.From(result);
        }

        if (!parameters.Synchronous)
        {
            return ManagementOutcome.Says("Processing worker updates...", StatusCodes.Status202Accepted);
        }

        // TorchServe's precedence: the parameter, then the archive's startupTimeout, then default_startup_timeout.
        var timeout = TimeSpan.FromSeconds(parameters.StartupTimeout ?? model.StartupTimeout ?? _settings.DefaultStartupTimeout);
        var started = await client.WaitForReplicasAsync(definition.Key, definition.Replicas, timeout, cancellation);
        if (started.Ready)
        {
            return ManagementOutcome.From(result);
        }

        // As TorchServe: a synchronous registration whose workers do not start is undone. A model file the
        // workers refused is the registrant's to fix (400, with the reason); anything else is TorchServe's 500.
        var undone = await client.SendAsync(new UnregisterModel(definition.Name, definition.Version), CancellationToken.None);
        if (undone.Error is null or { Kind: ServeErrorKind.NotFound })
        {
            model.Discard();
            downloads.Discard(file);
        }
        return ManagementOutcome.Failed(started.Refusal is { } refusal
            ? ServeErrors.NotRegistered(definition.Key, refusal)
            : ServeErrors.FailedToStartWorkers(definition.Key));
    }

    /// <summary>
    /// Sets the replica count to <paramref name="min"/> (TorchServe has no autoscaling between min and max
    /// either); synchronous waits for them, answering 206 if they are not all serving in time.
    /// </summary>
    public async Task<ManagementOutcome> ScaleAsync(string model, string? version, int min, int max, bool synchronous, CancellationToken cancellation)
    {
        if (max < min)
        {
            return ManagementOutcome.Failed(ServeErrors.MaxWorkerBelowMinWorker);
        }

        // The owner's replica and memory quotas bound the new count.
        var limits = catalog.Current.Find(model, version) is { } scaled && tenants.ById(scaled.Definition.Owner) is { } owner
            ? owner.Settings.Limits()
            : TenantLimits.None;
        var result = await client.SendAsync(new ScaleModel(model, version, min) { Limits = limits }, cancellation);
        if (result.Error is not null)
        {
            return ManagementOutcome.From(result);
        }

        if (!synchronous)
        {
            return ManagementOutcome.Says("Processing worker updates...", StatusCodes.Status202Accepted);
        }

        var key = version is null && catalog.Current.Find(model, null) is { } entry
            ? entry.Definition.Key
            : new ModelKey(model, version ?? string.Empty);
        return (await client.WaitForReplicasAsync(key, min, StartupTimeout, cancellation)).Ready
            ? ManagementOutcome.From(result)
            : ManagementOutcome.Says("Workers scaling in progress...", StatusCodes.Status206PartialContent);
    }

    public async Task<ManagementOutcome> UnregisterAsync(string model, string? version, CancellationToken cancellation) =>
        RefuseModelApi() ?? ManagementOutcome.From(await client.SendAsync(new UnregisterModel(model, version), cancellation));

    public async Task<ManagementOutcome> SetDefaultAsync(string model, string version, CancellationToken cancellation) =>
        ManagementOutcome.From(await client.SendAsync(new SetDefaultVersion(model, version), cancellation));

    private TimeSpan StartupTimeout => TimeSpan.FromSeconds(_settings.DefaultStartupTimeout);

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
            owner = d.Owner,
            sharedWith = d.SharedWithTenants,
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

    private static string ModelUrl(ModelDefinition definition) => definition.Url ?? definition.Source switch
    {
        TorchScriptSource script => Path.GetFileName(script.Path),
        BuiltInSource builtIn => $"builtin:{builtIn.Architecture}",
        _ => string.Empty,
    };
}
