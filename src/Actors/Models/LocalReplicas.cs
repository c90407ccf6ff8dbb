using System.Collections.Concurrent;
using Akka.Actor;
using Serve.Actors.Protocol;

namespace Serve.Actors.Models;

/// <summary>
/// The replicas this process hosts. A gateway in the same process (the standalone server) sends to them
/// directly instead of through the shard region and the shard, two mailbox hops fewer per request. A
/// replica is listed from its start until it begins to stop or hand off; from then on requests take the
/// sharded path, which buffers them until the replica lives again wherever it is placed.
/// </summary>
public sealed class LocalReplicas
{
    private readonly ConcurrentDictionary<ReplicaId, IActorRef> _replicas = new();

    /// <summary>Raised when a replica stops taking requests here, so requests waiting on it can go elsewhere.</summary>
    public event Action<ReplicaId>? Removed;

    public bool TryGet(ReplicaId replica, out IActorRef actor) => _replicas.TryGetValue(replica, out actor!);

    /// <summary>Every replica listed now.</summary>
    public IReadOnlyCollection<IActorRef> All => [.. _replicas.Values];

    internal void Add(ReplicaId replica, IActorRef actor) => _replicas[replica] = actor;

    internal void Remove(ReplicaId replica, IActorRef actor)
    {
        if (_replicas.TryRemove(KeyValuePair.Create(replica, actor)))
        {
            Removed?.Invoke(replica);
        }
    }
}
