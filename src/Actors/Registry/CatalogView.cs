using System.Collections.Frozen;
using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

/// <summary>
/// A node's read-only copy of the registry's catalog, plus which nodes cannot serve right now.
/// Swapped atomically by <see cref="CatalogSubscriber"/>; read lock-free on the request path.
/// </summary>
public sealed class CatalogView
{
    private volatile CatalogState _current = CatalogState.Empty;

    public CatalogState Current => _current;

    /// <summary>Raised after every change (on the subscriber's thread); used by tests and readiness.</summary>
    public event Action<CatalogState>? Changed;

    internal void Set(CatalogState state)
    {
        _current = state;
        Changed?.Invoke(state);
    }
}

/// <summary>One immutable view of the catalog, indexed for lookups by model name and version.</summary>
public sealed class CatalogState
{
    private readonly FrozenDictionary<string, CatalogEntry[]> _byName;

    public CatalogState(CatalogSnapshot snapshot, bool received, IReadOnlySet<string> unavailableNodes)
    {
        Snapshot = snapshot;
        Received = received;
        UnavailableNodes = unavailableNodes;
        _byName = snapshot.Entries
            .GroupBy(e => e.Definition.Name, StringComparer.Ordinal)
            .ToFrozenDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal);
    }

    public static CatalogState Empty { get; } = new(CatalogSnapshot.Empty, received: false, new HashSet<string>());

    public CatalogSnapshot Snapshot { get; }

    /// <summary>False until the first catalog arrives from the registry.</summary>
    public bool Received { get; }

    /// <summary>
    /// Nodes that cannot serve now: unreachable, or gone from the cluster (downed, leaving, removed). A
    /// replica status naming such a node is stale or unusable; requests never go there.
    /// </summary>
    public IReadOnlySet<string> UnavailableNodes { get; }

    public IEnumerable<CatalogEntry> Entries => Snapshot.Entries;

    public IReadOnlyList<CatalogEntry> VersionsOf(string model) =>
        _byName.TryGetValue(model, out var entries) ? entries : [];

    /// <summary>The entry for a model's version, or its default version when none is given.</summary>
    public CatalogEntry? Find(string model, string? version)
    {
        if (!_byName.TryGetValue(model, out var entries))
        {
            return null;
        }

        return string.IsNullOrEmpty(version)
            ? entries.FirstOrDefault(e => e.IsDefault) ?? entries[0]
            : entries.FirstOrDefault(e => e.Definition.Version == version);
    }

    public bool IsAvailable(ReplicaStatus status) => !UnavailableNodes.Contains(status.NodeAddress);

    /// <summary>
    /// Ready (the Open Inference Protocol's server readiness, which TorchServe always reports true): the
    /// catalog has arrived and every model's default version that wants replicas has one serving on a
    /// reachable node, leaving out versions whose every replica has stopped trying (its file refused or
    /// missing, or a crash loop given up). Those wait for a person, not for time: they are reported by the
    /// replica's log, describe, the model's own readiness and /ping, and do not keep the others from serving.
    /// </summary>
    public bool AllModelsReady =>
        Received && _byName.Values.All(versions =>
        {
            var entry = versions.FirstOrDefault(e => e.IsDefault) ?? versions[0];
            return entry.Definition.Replicas == 0
                   || entry.Replicas.Any(r => r.State == ReplicaState.Ready && IsAvailable(r))
                   || GaveUp(entry);
        });

    /// <summary>Every wanted replica has reported and none will try again until the definition changes.</summary>
    private static bool GaveUp(CatalogEntry entry) =>
        entry.Replicas.Length >= entry.Definition.Replicas
        && entry.Replicas.All(r => r.State is ReplicaState.Failed or ReplicaState.Rejected);

    /// <summary>
    /// Healthy (TorchServe's /ping): no model's default version is left with only failed replicas.
    /// Loading and restarting replicas still count as healthy, as in TorchServe's retry window.
    /// </summary>
    public bool Healthy =>
        Received && _byName.Values.All(versions =>
        {
            var entry = versions.FirstOrDefault(e => e.IsDefault) ?? versions[0];
            return entry.Definition.Replicas == 0 || !GaveUp(entry);
        });
}
