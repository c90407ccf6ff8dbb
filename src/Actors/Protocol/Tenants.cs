// Management APIs and registry for tenants; the tenant tag a request carries to its replica.

namespace Serve.Actors.Protocol;

/// <summary>
/// Whose request it is, as a replica schedules it: each tenant's requests wait in their own queue, and
/// the queues are served in proportion to <paramref name="Weight"/> (from the tenant's priority; at least
/// 1). <paramref name="QueueLimit"/> bounds how many of the tenant's requests one replica holds; 0: no
/// bound of its own beyond the model's job_queue_size, of which it gets a fair share when the queue is
/// full (see <c>FairQueue</c>).
/// </summary>
public sealed record TenantTag(string Id, int Weight, int QueueLimit)
{
    /// <summary>The operator (the server's own keys): weight 1, no queue bound of its own.</summary>
    public static TenantTag Admin { get; } = new(ModelDefinition.AdminTenant, 1, 0);
}

/// <summary>
/// A tenant created through the management API, kept by the registry so every gateway knows it. Keys are
/// only their SHA-256 (hex); quotas of 0 mean none (see the gateway's TenantOptions for each).
/// </summary>
public sealed record TenantDefinition(
    string Id, string Name, string[] KeySha256, int Weight, int RequestsPerSecond, int Burst, int MaxConcurrent, int MaxQueued,
    int MaxModels, int MaxReplicas, long MaxDeviceMemoryMb) : IServeMessage
{
    /// <summary>How the API names a key without showing it: the first 16 hex digits of its SHA-256.</summary>
    public static string KeyIdOf(string keySha256) => keySha256[..Math.Min(16, keySha256.Length)].ToLowerInvariant();
}

/// <summary>Management API to registry: create a tenant (refused when one with that id exists).</summary>
public sealed record DefineTenant(TenantDefinition Tenant) : IServeMessage;

/// <summary>
/// Management API to registry: change a tenant's name, weight or quotas; null or -1 leaves that setting as
/// it is, and its keys always stay. Applied by the registry, so concurrent changes of different settings
/// both land.
/// </summary>
public sealed record UpdateTenant(
    string Id, string? Name, int Weight, int RequestsPerSecond, int Burst, int MaxConcurrent, int MaxQueued,
    int MaxModels, int MaxReplicas, long MaxDeviceMemoryMb) : IServeMessage
{
    /// <summary>The tenant with these changes made.</summary>
    public TenantDefinition ApplyTo(TenantDefinition tenant) => tenant with
    {
        Name = Name ?? tenant.Name,
        Weight = Weight >= 0 ? Weight : tenant.Weight,
        RequestsPerSecond = RequestsPerSecond >= 0 ? RequestsPerSecond : tenant.RequestsPerSecond,
        Burst = Burst >= 0 ? Burst : tenant.Burst,
        MaxConcurrent = MaxConcurrent >= 0 ? MaxConcurrent : tenant.MaxConcurrent,
        MaxQueued = MaxQueued >= 0 ? MaxQueued : tenant.MaxQueued,
        MaxModels = MaxModels >= 0 ? MaxModels : tenant.MaxModels,
        MaxReplicas = MaxReplicas >= 0 ? MaxReplicas : tenant.MaxReplicas,
        MaxDeviceMemoryMb = MaxDeviceMemoryMb >= 0 ? MaxDeviceMemoryMb : tenant.MaxDeviceMemoryMb,
    };
}

/// <summary>Management API to registry: give a tenant another key (its SHA-256); the others keep working.</summary>
public sealed record AddTenantKey(string Id, string KeySha256) : IServeMessage;

/// <summary>Management API to registry: revoke one of a tenant's keys, named by its key id (<see cref="TenantDefinition.KeyIdOf"/>).</summary>
public sealed record RevokeTenantKey(string Id, string KeyId) : IServeMessage;

/// <summary>Management API to registry: remove a tenant (its models stay, callable by the admin tenant).</summary>
public sealed record RemoveTenant(string Id) : IServeMessage;

public sealed record TenantDefined(TenantDefinition Tenant) : RegistryEvent;

public sealed record TenantRemoved(string Id) : RegistryEvent;
