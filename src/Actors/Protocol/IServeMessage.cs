namespace Serve.Actors.Protocol;

/// <summary>
/// Marker for every message that may cross nodes. The cluster serializer (Hyperion) is bound to this
/// interface, and its type filter only instantiates types from this assembly's protocol.
/// </summary>
public interface IServeMessage;

/// <summary>Messages addressed to one model replica; the shard message extractor routes on this.</summary>
public interface IWithReplicaId : IServeMessage
{
    ReplicaId Replica { get; }
}
