using Akka.Cluster.Sharding;
using Serve.Actors.Protocol;

namespace Serve.Actors.Hosting;

/// <summary>
/// Routes <see cref="IWithReplicaId"/> messages to their replica. One shard per replica (shard id = entity
/// id) so the allocation strategy places every replica on its own.
/// </summary>
public sealed class ReplicaMessageExtractor : IMessageExtractor
{
    public const string TypeName = "model-replica";

    public string? EntityId(object message) => (message as IWithReplicaId)?.Replica.EntityId;

    public object? EntityMessage(object message) => message;

    public string? ShardId(object message) => EntityId(message);

    public string ShardId(string entityId, object? messageHint = null) => entityId;
}
