using Serve.Actors.Protocol;

namespace Serve.Gateway.Inference;

/// <summary>
/// Picks the replica for a request, as a pure function: a ready, placed (not retiring) replica on a
/// reachable node with the fewest requests outstanding from this gateway (ties broken at random); failing
/// that, a retiring replica that still serves (a move in progress); failing that, one still starting or
/// loading (it queues the request until it is ready); never one on a node that is unreachable or gone, and
/// never a replica the registry has not placed.
/// </summary>
public static class ReplicaSelector
{
    /// <returns>The index of the replica to send to, or why none can take the request.</returns>
    public static Result<int> Choose(
        CatalogEntry entry, IReadOnlySet<string> unavailableNodes, Func<int, int> outstanding,
        IReadOnlySet<int> exclude, Random random)
    {
        var definition = entry.Definition;
        if (definition.Replicas == 0)
        {
            return ServeErrors.NoWorkers(definition.Key);
        }

        if (entry.Assignments.Length == 0)
        {
            return ServeErrors.NoReplicaPlaced(definition.Key, entry.Unplaced);
        }

        var statuses = entry.Replicas.ToDictionary(s => s.Replica.Index);
        var indices = entry.ActiveIndices.Where(i => !exclude.Contains(i)).ToList();
        var retiring = entry.Assignments.Where(a => a.Retiring && !exclude.Contains(a.Index)).Select(a => a.Index).ToList();

        bool Reachable(int i) => !statuses.TryGetValue(i, out var s) || !unavailableNodes.Contains(s.NodeAddress);
        ReplicaState StateOf(int i) => statuses.TryGetValue(i, out var s) ? s.State : ReplicaState.Starting;

        var ready = indices.Where(i => StateOf(i) == ReplicaState.Ready && Reachable(i)).ToList();
        if (ready.Count > 0)
        {
            return LeastOutstanding(ready, outstanding, random);
        }

        // A replica being moved serves from its old place until its replacement is ready.
        var stillServing = retiring.Where(i => StateOf(i) == ReplicaState.Ready && Reachable(i)).ToList();
        if (stillServing.Count > 0)
        {
            return LeastOutstanding(stillServing, outstanding, random);
        }

        var coming = indices.Where(i => StateOf(i) is ReplicaState.Starting or ReplicaState.Loading or ReplicaState.Stopped && Reachable(i)).ToList();
        if (coming.Count > 0)
        {
            return LeastOutstanding(coming, outstanding, random);
        }

        var failure = statuses.Values
            .Where(s => s.State is ReplicaState.Failed or ReplicaState.Rejected or ReplicaState.Restarting && s.LastError is not null)
            .Select(s => $"replica {s.Replica.Index} is {s.State.ToString().ToLowerInvariant()}: {s.LastError}")
            .FirstOrDefault();
        var why = failure
                  ?? (indices.Count == 0
                      ? "every replica already failed this request"
                      : "its replicas are on nodes that are unreachable or leaving the cluster");
        return ServeErrors.NoReplicaCanServe(definition.Key, why);
    }

    private static int LeastOutstanding(List<int> candidates, Func<int, int> outstanding, Random random)
    {
        // Read each count once: other requests change them concurrently.
        var counts = candidates.Select(i => (Index: i, Count: outstanding(i))).ToList();
        var fewest = counts.Min(c => c.Count);
        var best = counts.Where(c => c.Count == fewest).ToList();
        return best[random.Next(best.Count)].Index;
    }
}
