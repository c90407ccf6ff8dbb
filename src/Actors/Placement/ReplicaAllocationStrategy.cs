using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Actors.Placement;

/// <summary>
/// Cluster sharding's allocation strategy for model replicas (one shard holds one replica). It follows the
/// registry's placement plan (<see cref="PlacementPlanner"/>, published in the catalog): a new replica's
/// shard goes to the node the plan names, waiting briefly for a catalog that has it. When that node is a
/// member whose shard region has not registered yet (it is starting), the allocation fails and sharding
/// asks again a moment later. Without a plan (a catalog that never comes, or a node that is no longer a
/// member) it falls back to <see cref="PlacementPolicy"/>. It never moves a replica the plan has: the
/// registry moves replicas itself, starting the replacement before the old replica stops, which sharding's
/// hand-off cannot do.
/// Rebalancing only frees shards the plan no longer has (retired, scaled down, unregistered), so a replica
/// that later takes such an index is placed afresh. Gateways run a shard region too, so that the coordinator
/// (on the oldest node) lives where a worker's failure cannot take it, but only workers' regions are
/// ever given a replica.
/// </summary>
/// <param name="isWorker">Whether an address is a cluster member with the worker role, joining or up.</param>
public sealed class ReplicaAllocationStrategy(CatalogView catalog, Address selfAddress, TimeSpan planWait, Func<string, bool> isWorker)
    : IShardAllocationStrategy
{
    public async Task<IActorRef> AllocateShard(
        IActorRef requester, string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
    {
        if (ReplicaId.TryParse(shardId, out var replica) && await PlannedNodeAsync(replica) is { } node)
        {
            if (currentShardAllocations.Keys.FirstOrDefault(region => AddressOf(region) == node) is { } planned)
            {
                return planned;
            }

            if (isWorker(node))
            {
                throw new InvalidOperationException($"replica {replica} is planned on {node}, whose shard region has not registered yet");
            }
        }

        return PlacementPolicy.ChooseRegion(shardId, WorkerRegions(currentShardAllocations), region => region.Path.ToString());
    }

    public Task<IImmutableSet<string>> Rebalance(
        IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations, IImmutableSet<string> rebalanceInProgress)
    {
        var state = catalog.Current;
        if (!state.Received)
        {
            return Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);
        }

        var unplanned = currentShardAllocations.Values.SelectMany(shards => shards)
            .Where(shard => !rebalanceInProgress.Contains(shard) && !IsPlanned(state, shard))
            .Take(MaxFreedPerRound);
        return Task.FromResult<IImmutableSet<string>>(unplanned.ToImmutableHashSet());
    }

    private const int MaxFreedPerRound = 16;

    /// <summary>
    /// False only for a shard the plan has dropped: its model version is gone, or it has a plan (a registry
    /// that just took over has none yet, and then nothing is freed) without this index.
    /// </summary>
    private static bool IsPlanned(CatalogState state, string shard)
    {
        if (!ReplicaId.TryParse(shard, out var replica))
        {
            return true;
        }

        var entry = state.Find(replica.Model, replica.Version);
        return entry is not null && entry.Definition.Version == replica.Version
               && (entry.Assignments.Length == 0 || entry.Assignments.Any(a => a.Index == replica.Index));
    }

    private async Task<string?> PlannedNodeAsync(ReplicaId replica)
    {
        var deadline = DateTime.UtcNow + planWait;
        while (true)
        {
            var planned = catalog.Current.Find(replica.Model, replica.Version)?.Assignments
                .FirstOrDefault(a => a.Index == replica.Index && !a.Retiring)?.NodeAddress;
            if (planned is not null || DateTime.UtcNow >= deadline)
            {
                return planned;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }
    }

    private string AddressOf(IActorRef region) =>
        (region.Path.Address.HasGlobalScope ? region.Path.Address : selfAddress).ToString();

    private Dictionary<IActorRef, IReadOnlyList<string>> WorkerRegions(
        IImmutableDictionary<IActorRef, IImmutableList<string>> allocations) =>
        allocations.Where(a => isWorker(AddressOf(a.Key))).ToDictionary(a => a.Key, a => (IReadOnlyList<string>)a.Value);
}
