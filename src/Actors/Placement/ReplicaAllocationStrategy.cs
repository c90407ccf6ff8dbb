using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;

namespace Serve.Actors.Placement;

/// <summary>
/// Cluster sharding's allocation strategy for model replicas, delegating every decision to
/// <see cref="PlacementPolicy"/>. One shard holds one replica, so each replica is placed on its own.
/// </summary>
public sealed class ReplicaAllocationStrategy : IShardAllocationStrategy
{
    public Task<IActorRef> AllocateShard(
        IActorRef requester, string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
    {
        var region = PlacementPolicy.ChooseRegion(shardId, AsReadOnly(currentShardAllocations), Order);
        return Task.FromResult(region);
    }

    public Task<IImmutableSet<string>> Rebalance(
        IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations, IImmutableSet<string> rebalanceInProgress)
    {
        var shard = PlacementPolicy.ChooseRebalance(AsReadOnly(currentShardAllocations), rebalanceInProgress.Count, Order);
        IImmutableSet<string> result = shard is null ? ImmutableHashSet<string>.Empty : ImmutableHashSet.Create(shard);
        return Task.FromResult(result);
    }

    private static string Order(IActorRef region) => region.Path.ToString();

    private static Dictionary<IActorRef, IReadOnlyList<string>> AsReadOnly(
        IImmutableDictionary<IActorRef, IImmutableList<string>> allocations) =>
        allocations.ToDictionary(a => a.Key, a => (IReadOnlyList<string>)a.Value);
}
