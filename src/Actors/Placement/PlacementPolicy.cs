using Serve.Actors.Protocol;

namespace Serve.Actors.Placement;

/// <summary>
/// Where a replica goes when the registry's plan cannot say (the fallback of
/// <see cref="ReplicaAllocationStrategy"/>), as a pure function over the current allocation (region -> shard
/// ids, where a shard id is a replica's entity id). Replicas of one model version spread over nodes first;
/// then the node with the fewest replicas wins; ties go to the first region in a stable order.
/// </summary>
public static class PlacementPolicy
{
    public static TRegion ChooseRegion<TRegion>(
        string shardId,
        IReadOnlyDictionary<TRegion, IReadOnlyList<string>> allocations,
        Func<TRegion, string> order)
        where TRegion : notnull
    {
        if (allocations.Count == 0)
        {
            throw new InvalidOperationException("no worker region to place a replica on");
        }

        var key = ModelKeyOf(shardId);
        return allocations
            .OrderBy(a => key is null ? 0 : a.Value.Count(s => ModelKeyOf(s) == key))
            .ThenBy(a => a.Value.Count)
            .ThenBy(a => order(a.Key), StringComparer.Ordinal)
            .First().Key;
    }

    private static ModelKey? ModelKeyOf(string shardId) =>
        ReplicaId.TryParse(shardId, out var id) ? id.Key : null;
}
