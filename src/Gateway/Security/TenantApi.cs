using System.Globalization;
using System.Text.Json;
using Serve.Actors.Protocol;
using Serve.Gateway.Apis;
using Serve.Gateway.Hosting;
using Serve.Gateway.Management;

namespace Serve.Gateway.Security;

/// <summary>
/// Tenants on the management listener (the management key): <c>GET /tenants</c> lists each tenant's weight,
/// quotas and use on this gateway; <c>POST /tenants</c> creates one and answers its inference key, once
/// (only the key's SHA-256 is kept, by the registry, so every gateway knows it); <c>DELETE /tenants/{id}</c>
/// removes one created that way. Configured tenants change only with the configuration.
/// </summary>
public static class TenantApi
{
    private static readonly string[] Quotas =
        ["weight", "requests_per_second", "burst", "max_concurrent", "max_queued", "max_models", "max_replicas", "max_device_memory_mb"];

    public static IEndpointRouteBuilder MapTenantApi(this IEndpointRouteBuilder app)
    {
        var tenants = app.MapGroup("/tenants").OnListener(ListenerKind.Management);
        tenants.MapGet(string.Empty, (TenantDirectory directory, TenantQuotas quotas) =>
            Results.Json(new { tenants = directory.Tenants.Prepend(Tenant.Admin).Select(t => Describe(t, quotas.UsageOf(t.Id))).ToArray() }));
        tenants.MapPost(string.Empty, CreateAsync);
        tenants.MapDelete("/{id}", async (string id, TenantDirectory directory, IManagementClient client, CancellationToken cancellation) =>
            directory.IsConfigured(id)
                ? ErrorTable.TorchServe(new ServeError(ServeErrorKind.Forbidden, $"Tenant \"{id}\" is configured; remove it from the configuration"))
                : ManagementOutcome.From(await client.SendAsync(new RemoveTenant(id), cancellation)).ToResult());
        return app;
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, TenantDirectory directory, IManagementClient client, CancellationToken cancellation)
    {
        var values = request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal);
        if (request.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) == true)
        {
            try
            {
                using var body = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 4 }, cancellation);
                foreach (var property in body.RootElement.EnumerateObject())
                {
                    values[property.Name] = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : property.Value.GetRawText();
                }
            }
            catch (Exception malformed) when (malformed is JsonException or InvalidOperationException)
            {
                return ErrorTable.TorchServe(new ServeError(ServeErrorKind.BadInput, $"The request body must be a JSON object of tenant settings: {malformed.Message}"));
            }
        }

        var problems = new List<string>();
        long Number(string name, long fallback)
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

        var settings = new TenantOptions
        {
            Id = values.GetValueOrDefault("id") ?? string.Empty,
            Name = values.GetValueOrDefault("name"),
            Weight = (int)Number("weight", 1),
            RequestsPerSecond = (int)Number("requests_per_second", 0),
            Burst = (int)Number("burst", 0),
            MaxConcurrent = (int)Number("max_concurrent", 0),
            MaxQueued = (int)Number("max_queued", 0),
            MaxModels = (int)Number("max_models", 0),
            MaxReplicas = (int)Number("max_replicas", 0),
            MaxDeviceMemoryMb = Number("max_device_memory_mb", 0),
        };
        problems.AddRange(TenantsOptions.SettingsProblems(settings));
        problems.AddRange(values.Keys.Where(k => k is not ("id" or "name") && !Quotas.Contains(k)).Select(k => $"unknown setting '{k}'"));
        if (problems.Count > 0)
        {
            return ErrorTable.TorchServe(new ServeError(ServeErrorKind.BadInput, string.Join("; ", problems)));
        }

        if (directory.ById(settings.Id) is not null)
        {
            return ErrorTable.TorchServe(new ServeError(ServeErrorKind.Conflict, $"Tenant \"{settings.Id}\" already exists"));
        }

        // The key is shown once, here; the registry keeps only its hash.
        var key = ApiKeys.NewKey();
        var definition = new TenantDefinition(settings.Id, settings.Name ?? settings.Id, [TenantDirectory.Hash(key)], settings.Weight,
            settings.RequestsPerSecond, settings.Burst, settings.MaxConcurrent, settings.MaxQueued, settings.MaxModels, settings.MaxReplicas,
            settings.MaxDeviceMemoryMb);
        var result = await client.SendAsync(new DefineTenant(definition), cancellation);
        return result.Error is { } error
            ? ErrorTable.TorchServe(error)
            : Results.Json(new { status = result.Message, id = settings.Id, key }, statusCode: StatusCodes.Status201Created);
    }

    private static object Describe(Tenant tenant, TenantUsage usage) => new
    {
        id = tenant.Id,
        name = tenant.Name,
        source = tenant.Id == Tenant.AdminId ? "built-in" : tenant.FromApi ? "api" : "configuration",
        weight = tenant.Settings.Weight,
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
