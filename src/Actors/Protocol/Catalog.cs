// Registry and every node: start-up models and the catalog it publishes.

namespace Serve.Actors.Protocol;

/// <summary>Register model versions (at start-up, and from the management API later). Idempotent.</summary>
public sealed record RegisterModels(ModelDefinition[] Models) : IServeMessage;

/// <summary>The answer to <see cref="RegisterModels"/>, from the registry instance named by its incarnation.</summary>
/// <param name="Removed">Start-up models of an earlier configuration that this one no longer names, now unregistered.</param>
public sealed record ModelsRegistered(string RegistryIncarnation, string[] Registered, string[] Problems, string[] Removed) : IServeMessage;

/// <summary>Ask the registry for the current catalog.</summary>
public sealed record GetCatalog : IServeMessage
{
    public static GetCatalog Instance { get; } = new();
}

/// <summary>One model version in the catalog, with the state of each of its replicas.</summary>
public sealed record CatalogEntry(ModelDefinition Definition, bool IsDefault, ReplicaStatus[] Replicas)
{
    /// <summary>Where the registry placed each replica (retiring ones included); requests go only to active ones.</summary>
    public ReplicaAssignment[] Assignments { get; init; } = [];

    /// <summary>Why some replicas could not be placed, when that is so.</summary>
    public string? Unplaced { get; init; }

    /// <summary>The replica indices that take requests: placed and not retiring.</summary>
    public IEnumerable<int> ActiveIndices => Assignments.Where(a => !a.Retiring).Select(a => a.Index);
}

/// <summary>
/// The whole desired and observed state, published by the registry on every change and periodically.
/// Revisions only grow while one registry instance lives; a new registry starts again from 1, so readers
/// accept any snapshot from a different <paramref name="RegistryIncarnation"/>.
/// </summary>
public sealed record CatalogSnapshot(string RegistryIncarnation, long Revision, CatalogEntry[] Entries) : IServeMessage
{
    /// <summary>The worker nodes and their devices, as they last reported.</summary>
    public NodeInventory[] Nodes { get; init; } = [];

    /// <summary>
    /// False while a registry that just started has not made its first placement plan (it waits for the
    /// workers to report what they hold): readers keep a planned catalog from an earlier registry until then.
    /// </summary>
    public bool Planned { get; init; } = true;

    /// <summary>
    /// True while a change to the desired state waits for the next placement plan (the registry lets a
    /// newly reported worker settle first): the assignments are those from before the change, so whoever
    /// waits for a change to take effect waits on.
    /// </summary>
    public bool ReplanPending { get; init; }

    /// <summary>Tenants created through the management API, for every gateway to recognise their keys.</summary>
    public TenantDefinition[] Tenants { get; init; } = [];

    public static CatalogSnapshot Empty { get; } = new("none", 0, []);
}
