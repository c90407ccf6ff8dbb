using System.Globalization;
using System.Text.Json;
using Serve.Actors.Protocol;
using Serve.Gateway.Hosting;
using Serve.Gateway.Management;
using Serve.Gateway.Security;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// Tenants on the management listener (the management key): <c>GET /tenants</c> lists each tenant's weight,
/// quotas, key ids and use on this gateway; <c>POST /tenants</c> creates one and answers its inference key,
/// once (only the key's SHA-256 is kept, by the registry, so every gateway knows it); <c>PATCH
/// /tenants/{id}</c> changes its name, weight or quotas; <c>POST /tenants/{id}/keys</c> adds a key and
/// <c>DELETE /tenants/{id}/keys/{keyId}</c> revokes one (rotation without a moment without a key);
/// <c>DELETE /tenants/{id}</c> removes it. Configured tenants change only with the configuration.
/// </summary>
public static class TenantApi
{
    private static readonly string[] Quotas =
        ["weight", "requests_per_second", "burst", "max_concurrent", "max_queued", "max_models", "max_replicas", "max_device_memory_mb"];

    /// <summary>The settings <c>PATCH /tenants/{id}</c> takes.</summary>
    public static IReadOnlyList<string> UpdateSettings { get; } = ["name", .. Quotas];

    /// <summary>The settings <c>POST /tenants</c> takes: the id, then the same as an update.</summary>
    public static IReadOnlyList<string> CreateSettings { get; } = ["id", .. UpdateSettings];

    public static IEndpointRouteBuilder MapTenantApi(this IEndpointRouteBuilder app)
    {
        var tenants = app.MapGroup("/tenants").OnListener(ListenerKind.Management);
        tenants.MapGet(string.Empty, (TenantDirectory directory, TenantQuotas quotas) =>
            Results.Json(new { tenants = directory.Tenants.Prepend(Tenant.Admin).Select(t => Describe(t, quotas.ReadUsage(t.Id))).ToArray() }));
        tenants.MapPost(string.Empty, CreateAsync);
        tenants.MapPatch("/{id}", UpdateAsync);
        tenants.MapDelete("/{id}", (string id, TenantDirectory directory, IManagementClient client, CancellationToken cancellation) =>
            SendUnlessConfiguredAsync(id, directory, client, new RemoveTenant(id), cancellation));
        tenants.MapPost("/{id}/keys", AddKeyAsync);
        tenants.MapDelete("/{id}/keys/{keyId}", (string id, string keyId, TenantDirectory directory, IManagementClient client, CancellationToken cancellation) =>
            SendUnlessConfiguredAsync(id, directory, client, new RevokeTenantKey(id, keyId), cancellation));
        return app;
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, TenantDirectory directory, IManagementClient client, CancellationToken cancellation)
    {
        var (values, problems) = await ReadSettingsAsync(request, CreateSettings, cancellation);
        if (problems.Count > 0)
        {
            return BadInput(problems);
        }

        var settings = new TenantOptions
        {
            Id = values.GetValueOrDefault("id") ?? string.Empty,
            Name = DisplayName(values),
            Weight = (int)Number(values, "weight", 1, problems),
            RequestsPerSecond = (int)Number(values, "requests_per_second", 0, problems),
            Burst = (int)Number(values, "burst", 0, problems),
            MaxConcurrent = (int)Number(values, "max_concurrent", 0, problems),
            MaxQueued = (int)Number(values, "max_queued", 0, problems),
            MaxModels = (int)Number(values, "max_models", 0, problems),
            MaxReplicas = (int)Number(values, "max_replicas", 0, problems),
            MaxDeviceMemoryMb = Number(values, "max_device_memory_mb", 0, problems),
        };
        problems.AddRange(TenantsOptions.SettingsProblems(settings));
        if (problems.Count > 0)
        {
            return BadInput(problems);
        }

        if (directory.IsConfigured(settings.Id))
        {
            return ErrorTable.TorchServe(ServeErrors.TenantExists(settings.Id));
        }

        // The key is shown once, here; the registry keeps only its hash (and refuses an id it already has).
        var key = ApiKeys.NewKey();
        var definition = settings.ToDefinition([TenantDirectory.Hash(key)]);
        var result = await client.SendAsync(new DefineTenant(definition), cancellation);
        return result.Error is { } error
            ? ErrorTable.TorchServe(error)
            : Results.Json(new { status = result.Message, id = settings.Id, key, keyId = TenantDefinition.KeyIdOf(definition.KeySha256[0]) },
                statusCode: StatusCodes.Status201Created);
    }

    /// <summary>Changes the settings given (query or JSON body, as for create); the others and the keys stay.</summary>
    private static async Task<IResult> UpdateAsync(
        string id, HttpRequest request, TenantDirectory directory, TenantQuotas quotas, IManagementClient client, CancellationToken cancellation)
    {
        if (RefuseConfigured(id, directory) is { } refused)
        {
            return refused;
        }

        var (values, problems) = await ReadSettingsAsync(request, UpdateSettings, cancellation);
        var update = new UpdateTenant(id, DisplayName(values),
            (int)Number(values, "weight", -1, problems), (int)Number(values, "requests_per_second", -1, problems),
            (int)Number(values, "burst", -1, problems), (int)Number(values, "max_concurrent", -1, problems),
            (int)Number(values, "max_queued", -1, problems), (int)Number(values, "max_models", -1, problems),
            (int)Number(values, "max_replicas", -1, problems), Number(values, "max_device_memory_mb", -1, problems));
        // The same checks as at creation, over the settings given (absent ones are valid as they are).
        problems.AddRange(TenantsOptions.SettingsProblems(new TenantOptions { Id = id, Weight = update.Weight < 0 ? 1 : update.Weight }));

        if (problems.Count > 0)
        {
            return BadInput(problems);
        }

        var result = await client.SendAsync(update, cancellation);
        return result.Error is { } error
            ? ErrorTable.TorchServe(error)
            : Results.Json(new { status = result.Message, tenant = directory.ById(id) is { } changed ? Describe(changed, quotas.ReadUsage(id)) : null });
    }

    /// <summary>A new key for the tenant, answered once; its other keys keep working until revoked.</summary>
    private static async Task<IResult> AddKeyAsync(string id, TenantDirectory directory, IManagementClient client, CancellationToken cancellation)
    {
        if (RefuseConfigured(id, directory) is { } refused)
        {
            return refused;
        }

        var key = ApiKeys.NewKey();
        var hash = TenantDirectory.Hash(key);
        var result = await client.SendAsync(new AddTenantKey(id, hash), cancellation);
        return result.Error is { } error
            ? ErrorTable.TorchServe(error)
            : Results.Json(new { status = result.Message, id, key, keyId = TenantDefinition.KeyIdOf(hash) }, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> SendUnlessConfiguredAsync(
        string id, TenantDirectory directory, IManagementClient client, IServeMessage command, CancellationToken cancellation) =>
        RefuseConfigured(id, directory) ?? ManagementOutcome.From(await client.SendAsync(command, cancellation)).ToResult();

    private static IResult? RefuseConfigured(string id, TenantDirectory directory) => directory.IsConfigured(id)
        ? ErrorTable.TorchServe(new ServeError(ServeErrorKind.Forbidden, $"Tenant \"{id}\" is configured; change it in the configuration"))
        : null;

    private static IResult BadInput(IEnumerable<string> problems) =>
        ErrorTable.TorchServe(new ServeError(ServeErrorKind.BadInput, string.Join("; ", problems)));

    /// <summary>Settings from the query string and, when the body is JSON, from its object; unknown names are problems.</summary>
    private static async Task<(Dictionary<string, string?> Values, List<string> Problems)> ReadSettingsAsync(
        HttpRequest request, IReadOnlyList<string> known, CancellationToken cancellation)
    {
        var values = request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal);
        var problems = new List<string>();
        if (request.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) == true)
        {
            try
            {
                using var body = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 4 }, cancellation);
                foreach (var property in body.RootElement.EnumerateObject().Where(p => p.Value.ValueKind != JsonValueKind.Null))
                {
                    values[property.Name] = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : property.Value.GetRawText();
                }
            }
            catch (Exception malformed) when (malformed is JsonException or InvalidOperationException)
            {
                problems.Add($"The request body must be a JSON object of tenant settings: {malformed.Message}");
            }
        }

        problems.AddRange(values.Keys.Where(k => !known.Contains(k)).Select(k => $"unknown setting '{k}'"));
        return (values, problems);
    }

    /// <summary>The display name given, or null when none (absent or empty).</summary>
    private static string? DisplayName(Dictionary<string, string?> values) =>
        values.GetValueOrDefault("name") is { Length: > 0 } name ? name : null;

    /// <summary>A whole number from 0 for <paramref name="name"/>, else <paramref name="fallback"/> (absent, or a problem noted).</summary>
    private static long Number(Dictionary<string, string?> values, string name, long fallback, List<string> problems)
    {
        if (!values.TryGetValue(name, out var text) || string.IsNullOrEmpty(text))
        {
            return fallback;
        }

        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value is >= 0 and <= int.MaxValue)
        {
            return value;
        }

        problems.Add($"{name} must be a whole number from 0, not '{text}'");
        return fallback;
    }

    private static object Describe(Tenant tenant, TenantUsage usage) => new
    {
        id = tenant.Id,
        name = tenant.Name,
        source = tenant.Id == Tenant.AdminId ? "built-in" : tenant.FromApi ? "api" : "configuration",
        weight = tenant.Settings.Weight,
        // Only API tenants' keys can be revoked by id; configured keys are the operator's to keep private.
        keys = tenant.FromApi ? tenant.Settings.KeySha256.Select(TenantDefinition.KeyIdOf).ToArray() : null,
        quotas = new
        {
            requestsPerSecond = tenant.Settings.RequestsPerSecond,
            burst = tenant.Settings.Burst > 0 ? tenant.Settings.Burst : tenant.Settings.RequestsPerSecond,
            maxConcurrent = tenant.Settings.MaxConcurrent,
            maxQueued = tenant.Settings.MaxQueued,
            maxModels = tenant.Settings.MaxModels,
            maxReplicas = tenant.Settings.MaxReplicas,
            maxDeviceMemoryMb = tenant.Settings.MaxDeviceMemoryMb,
        },
        usage = new
        {
            requests = Interlocked.Read(ref usage.Requests),
            inFlight = Interlocked.Read(ref usage.InFlight),
            answered = Interlocked.Read(ref usage.Answered),
            rejected = new
            {
                rate = Interlocked.Read(ref usage.RejectedRate),
                concurrency = Interlocked.Read(ref usage.RejectedConcurrency),
                queue = Interlocked.Read(ref usage.RejectedQueue),
            },
            queueMs = Interlocked.Read(ref usage.QueueMicros) / 1000.0,
            deviceMs = Interlocked.Read(ref usage.DeviceMicros) / 1000.0,
        },
    };
}
