using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Serve.Gateway.Security;

/// <summary>
/// One tenant (section <c>Serve:Tenants:N</c>): who it is, how its keys are recognised (SHA-256 only: the
/// keys themselves are never stored), its share of a busy model (<see cref="Weight"/>) and its quotas.
/// A quota of 0 means none.
/// </summary>
public sealed class TenantOptions
{
    public string Id { get; set; } = string.Empty;

    public string? Name { get; set; }

    /// <summary>Lower-case hex SHA-256 of each inference key of this tenant (<c>printf %s "$key" | sha256sum</c>).</summary>
    public string[] KeySha256 { get; set; } = [];

    /// <summary>Relative share of a model's device when tenants compete for it (1 = the same as the admin tenant).</summary>
    public int Weight { get; set; } = 1;

    /// <summary>Sustained requests per second (token bucket refill), per gateway.</summary>
    public int RequestsPerSecond { get; set; }

    /// <summary>Requests allowed at once above the sustained rate (the bucket's size); 0: one second's worth.</summary>
    public int Burst { get; set; }

    /// <summary>Requests of this tenant in flight at once, per gateway.</summary>
    public int MaxConcurrent { get; set; }

    /// <summary>Requests of this tenant waiting in one replica's queue (its share of job_queue_size).</summary>
    public int MaxQueued { get; set; }

    /// <summary>Model versions it may own (checked by the registry at registration).</summary>
    public int MaxModels { get; set; }

    /// <summary>Replicas of its models in all (registration and scaling).</summary>
    public int MaxReplicas { get; set; }

    /// <summary>Device memory its replicas may declare in all, in MB.</summary>
    public long MaxDeviceMemoryMb { get; set; }

    /// <summary>The registry's quotas, sent with each registration or scale of its models.</summary>
    public Serve.Actors.Protocol.TenantLimits Limits() => new(Id, MaxModels, MaxReplicas, MaxDeviceMemoryMb);

    // The two conversions between a configured tenant's shape and the registry's record of an API tenant
    // (UpdateTenant is a partial change and the journal has its own versioned schema; each converts beside it).

    /// <summary>The registry's record of these settings, with the SHA-256 of its keys.</summary>
    public Serve.Actors.Protocol.TenantDefinition ToDefinition(string[] keySha256) => new(
        Id, Name ?? Id, keySha256, Weight, RequestsPerSecond, Burst, MaxConcurrent, MaxQueued, MaxModels, MaxReplicas, MaxDeviceMemoryMb);

    /// <summary>The settings of a tenant the registry keeps (created through the management API).</summary>
    public static TenantOptions From(Serve.Actors.Protocol.TenantDefinition tenant) => new()
    {
        Id = tenant.Id,
        Name = tenant.Name,
        KeySha256 = tenant.KeySha256,
        Weight = tenant.Weight,
        RequestsPerSecond = tenant.RequestsPerSecond,
        Burst = tenant.Burst,
        MaxConcurrent = tenant.MaxConcurrent,
        MaxQueued = tenant.MaxQueued,
        MaxModels = tenant.MaxModels,
        MaxReplicas = tenant.MaxReplicas,
        MaxDeviceMemoryMb = tenant.MaxDeviceMemoryMb,
    };
}

/// <summary>Who a request runs for; <paramref name="FromApi"/>: created through the management API (else configured).</summary>
public sealed record Tenant(string Id, string Name, TenantOptions Settings, bool FromApi = false)
{
    /// <summary>The holders of the server's own keys (key_file.json): every model, no quotas, weight 1.</summary>
    public static readonly Tenant Admin = new(AdminId, "administrator", new TenantOptions { Id = AdminId, Weight = 1 });

    public const string AdminId = Serve.Actors.Protocol.ModelDefinition.AdminTenant;

    /// <summary>What a replica needs to queue this tenant's requests fairly.</summary>
    public Serve.Actors.Protocol.TenantTag Tag => new(Id, Settings.Weight, Settings.MaxQueued);
}

/// <summary>
/// The tenants: configured ones, and those created through the management API, which the registry keeps
/// and every gateway learns from the catalog. Which one a presented key belongs to.
/// </summary>
public sealed class TenantDirectory
{
    private readonly Tenant[] _configured;
    private readonly Dictionary<string, Tenant> _configuredByHash;
    private readonly Serve.Actors.Registry.CatalogView _catalog;
    private ApiTenants _fromApi = new(null, [], []);

    public TenantDirectory(IOptions<TenantsOptions> options, Serve.Actors.Registry.CatalogView catalog)
    {
        _catalog = catalog;
        _configured = [.. options.Value.Tenants.Select(t => new Tenant(t.Id, t.Name ?? t.Id, t))];
        _configuredByHash = ByHash(_configured);
    }

    public IReadOnlyList<Tenant> Tenants => [.. _configured, .. FromApi().Tenants];

    /// <summary>The tenant with this id (the admin tenant included), else null.</summary>
    public Tenant? ById(string id) => id == Tenant.AdminId ? Tenant.Admin : Tenants.FirstOrDefault(t => t.Id == id);

    /// <summary>Whether <paramref name="id"/> is the admin's or a configured tenant's (the management API may not define it).</summary>
    public bool IsConfigured(string id) => id == Tenant.AdminId || _configured.Any(t => t.Id == id);

    /// <summary>
    /// The tenant whose key <paramref name="presented"/> is, else null. Only the key's SHA-256 is compared,
    /// so what a lookup's timing could reveal is about a hash, not about a key.
    /// </summary>
    public Tenant? ByKey(string? presented)
    {
        if (presented is null)
        {
            return null;
        }

        var hash = Hash(presented);
        return _configuredByHash.GetValueOrDefault(hash) ?? FromApi().ByHash.GetValueOrDefault(hash);
    }

    /// <summary>The API's tenants from the current catalog, rebuilt only when a new catalog has arrived.</summary>
    private ApiTenants FromApi()
    {
        var snapshot = _catalog.Current.Snapshot;
        var cached = _fromApi;
        if (ReferenceEquals(cached.Source, snapshot))
        {
            return cached;
        }

        Tenant[] tenants = [.. (snapshot.Tenants ?? []).Where(t => !IsConfigured(t.Id)).Select(t => new Tenant(t.Id, t.Name, TenantOptions.From(t), FromApi: true))];
        _fromApi = new ApiTenants(snapshot, tenants, ByHash(tenants));
        return _fromApi;
    }

    private static Dictionary<string, Tenant> ByHash(IEnumerable<Tenant> tenants)
    {
        var byHash = new Dictionary<string, Tenant>(StringComparer.Ordinal);
        foreach (var tenant in tenants)
        {
            foreach (var hash in tenant.Settings.KeySha256)
            {
                byHash[hash.ToLowerInvariant()] = tenant;
            }
        }

        return byHash;
    }

    private sealed record ApiTenants(Serve.Actors.Protocol.CatalogSnapshot? Source, Tenant[] Tenants, Dictionary<string, Tenant> ByHash);

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}

/// <summary>Section <c>Serve</c>'s <c>Tenants</c> list.</summary>
public sealed class TenantsOptions
{
    public List<TenantOptions> Tenants { get; set; } = [];

    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        var ids = new HashSet<string>(StringComparer.Ordinal) { Tenant.AdminId };
        var hashes = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var tenant in Tenants)
        {
            problems.AddRange(SettingsProblems(tenant));
            if (!ids.Add(tenant.Id))
            {
                problems.Add($"tenant id '{tenant.Id}' is used twice (or is the built-in '{Tenant.AdminId}')");
            }

            if (tenant.KeySha256.Length == 0)
            {
                problems.Add($"tenant '{tenant.Id}' has no KeySha256: give the SHA-256 (hex) of each of its keys");
            }

            foreach (var hash in tenant.KeySha256)
            {
                if (hash.Length != 64 || !hash.All(Uri.IsHexDigit))
                {
                    problems.Add($"tenant '{tenant.Id}': KeySha256 '{hash}' is not 64 hex digits (the SHA-256 of a key, not the key)");
                }
                else if (!hashes.Add(hash))
                {
                    problems.Add($"tenant '{tenant.Id}': a key hash is given to two tenants");
                }
            }

        }

        return problems;
    }

    /// <summary>What is wrong with one tenant's id, weight and quotas (keys aside), for configuration and the API alike.</summary>
    public static IEnumerable<string> SettingsProblems(TenantOptions tenant)
    {
        if (!System.Text.RegularExpressions.Regex.IsMatch(tenant.Id, @"^[A-Za-z0-9_.-]{1,64}\z"))
        {
            yield return $"tenant id '{tenant.Id}' must be 1-64 letters, digits, '.', '_' or '-'";
        }

        if (tenant.Weight is < 1 or > 1000)
        {
            yield return $"tenant '{tenant.Id}': Weight must be 1-1000, not {tenant.Weight}";
        }

        if (tenant.RequestsPerSecond < 0 || tenant.Burst < 0 || tenant.MaxConcurrent < 0 || tenant.MaxQueued < 0
            || tenant.MaxModels < 0 || tenant.MaxReplicas < 0 || tenant.MaxDeviceMemoryMb < 0)
        {
            yield return $"tenant '{tenant.Id}': quotas must be 0 (none) or positive";
        }
    }
}
