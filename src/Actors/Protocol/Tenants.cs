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
    int MaxModels, int MaxReplicas, long MaxDeviceMemoryMb) : IServeMessage;

/// <summary>Management API to registry: create or replace a tenant.</summary>
public sealed record DefineTenant(TenantDefinition Tenant) : IServeMessage;

/// <summary>Management API to registry: remove a tenant (its models stay, callable by the admin tenant).</summary>
public sealed record RemoveTenant(string Id) : IServeMessage;

public sealed record TenantDefined(TenantDefinition Tenant) : RegistryEvent;

public sealed record TenantRemoved(string Id) : RegistryEvent;
