using Serve.Actors.Protocol;

namespace Serve.Actors.Placement;

/// <summary>
/// Where replicas go, as pure functions over the current allocation (region -> shard ids, where a shard id
/// is a replica's entity id). Replicas of one model version spread over nodes first; then the node with
/// the fewest replicas wins; ties go to the first region in a stable order.
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

    /// <summary>
    /// At most one shard to move, so the cluster converges step by step without churn: first to spread a
    /// model version whose replicas are unevenly spread (counts differ by 2 or more), then to even out
    /// the total count per node without making any model's spread worse.
    /// </summary>
    public static string? ChooseRebalance<TRegion>(
        IReadOnlyDictionary<TRegion, IReadOnlyList<string>> allocations,
        int inProgress,
        Func<TRegion, string> order)
        where TRegion : notnull
    {
        if (inProgress > 0 || allocations.Count < 2)
        {
            return null;
        }

        var regions = allocations.OrderBy(a => order(a.Key), StringComparer.Ordinal).ToList();
        var keys = regions.SelectMany(r => r.Value).Select(ModelKeyOf).OfType<ModelKey>().Distinct().OrderBy(k => k.ToString());
        foreach (var key in keys)
        {
            var counts = regions.Select(r => (Region: r, Count: r.Value.Count(s => ModelKeyOf(s) == key))).ToList();
            var most = counts.MaxBy(c => c.Count);
            var least = counts.MinBy(c => c.Count);
            if (most.Count - least.Count >= 2)
            {
                return most.Region.Value.Where(s => ModelKeyOf(s) == key).Max(StringComparer.Ordinal);
            }
        }

        var busiest = regions.MaxBy(r => r.Value.Count);
        var idlest = regions.MinBy(r => r.Value.Count);
        if (busiest.Value.Count - idlest.Value.Count < 2)
        {
            return null;
        }

        // Move a shard whose model has more replicas on the busiest node than on the idlest one.
        return busiest.Value
            .Where(s => ModelKeyOf(s) is { } k
                        && busiest.Value.Count(x => ModelKeyOf(x) == k) > idlest.Value.Count(x => ModelKeyOf(x) == k))
            .OrderBy(s => s, StringComparer.Ordinal)
            .FirstOrDefault();
    }

    private static ModelKey? ModelKeyOf(string shardId) =>
        ReplicaId.TryParse(shardId, out var id) ? id.Key : null;
}
