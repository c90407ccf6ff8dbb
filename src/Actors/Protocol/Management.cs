// Management APIs and registry: model commands, their results, and the events the registry persists.

namespace Serve.Actors.Protocol;

/// <summary>
/// A tenant's registry quotas (0: none): model versions registered, replicas in all, and device memory its
/// replicas declare in all. The gateway sends them with each command that could exceed them, so the registry
/// checks them against the one desired state every gateway shares.
/// </summary>
public sealed record TenantLimits(string Tenant, int MaxModels, int MaxReplicas, long MaxDeviceMemoryMb) : IServeMessage
{
    public static readonly TenantLimits None = new(ModelDefinition.AdminTenant, 0, 0, 0);
}

/// <summary>Management API to registry: register one model version (409 when that version exists).</summary>
public sealed record RegisterModel(ModelDefinition Definition) : IServeMessage
{
    /// <summary>The owner's quotas.</summary>
    public TenantLimits Limits { get; init; } = TenantLimits.None;
}

/// <summary>Remove a model version (its default version when <paramref name="Version"/> is null).</summary>
public sealed record UnregisterModel(string Model, string? Version) : IServeMessage;

/// <summary>Set a model version's replica count (its default version when <paramref name="Version"/> is null).</summary>
public sealed record ScaleModel(string Model, string? Version, int Replicas) : IServeMessage
{
    /// <summary>The owner's quotas.</summary>
    public TenantLimits Limits { get; init; } = TenantLimits.None;
}

/// <summary>Make a version the one requests without a version go to.</summary>
public sealed record SetDefaultVersion(string Model, string Version) : IServeMessage;

/// <summary>The registry's answer to a management command: done (with TorchServe's message) or why not.</summary>
public sealed record RegistryResult(ServeError? Error, string Message) : IServeMessage
{
    public static RegistryResult Done(string message) => new(null, message);

    public static RegistryResult Refused(ServeErrorKind kind, string message) => new(new ServeError(kind, message), message);
}

/// <summary>What the registry persists: each change to the desired state.</summary>
public abstract record RegistryEvent : IServeMessage;

/// <param name="FromConfiguration">Registered from a gateway's start-up configuration (which is remembered
/// so that the same configuration at the next start does not undo changes made through the API).</param>
public sealed record ModelVersionRegistered(ModelDefinition Definition, bool FromConfiguration) : RegistryEvent;

public sealed record ModelVersionUnregistered(ModelKey Key) : RegistryEvent;

public sealed record ModelVersionScaled(ModelKey Key, int Replicas) : RegistryEvent;

public sealed record DefaultVersionSet(string Model, string Version) : RegistryEvent;

/// <summary>The whole desired state, saved every so many events so recovery need not replay them all.</summary>
public sealed record RegistrySnapshot(ModelDefinition[] Models, DefaultVersion[] Defaults, ModelDefinition[] Configured) : IServeMessage
{
    /// <summary>Tenants created through the management API (null in snapshots taken before tenants existed).</summary>
    public TenantDefinition[] Tenants { get; init; } = [];
}

public sealed record DefaultVersion(string Model, string Version);
