// Registry and replica (ModelActor): wake, stop, status reports and definition lookups.

namespace Serve.Actors.Protocol;

/// <summary>The life of a replica, as reported to the registry and shown by the APIs.</summary>
public enum ReplicaState
{
    /// <summary>Waiting for its definition or for a device.</summary>
    Starting,

    /// <summary>Loading the model onto its device.</summary>
    Loading,

    /// <summary>Serving requests.</summary>
    Ready,

    /// <summary>Failed; waiting out an exponential backoff before loading again.</summary>
    Restarting,

    /// <summary>Failed too often in a row; no longer retried until its definition changes.</summary>
    Failed,

    /// <summary>
    /// Its model file was refused (not loadable, or it would crash the node); not retried, since loading the
    /// same file again cannot succeed, until its definition changes.
    /// </summary>
    Rejected,

    /// <summary>Stopped (handed off to another node or removed).</summary>
    Stopped,
}

/// <summary>One replica's state: which node and device hold it, whether it serves, its last failure.</summary>
public sealed record ReplicaStatus(
    ReplicaId Replica,
    ReplicaState State,
    string NodeAddress,
    string Device,
    ModelSignature? Signature,
    int Restarts,
    string? LastError,
    DateTime SinceUtc) : IServeMessage
{
    /// <summary>Bytes its model's parameters and buffers take on the device; -1 when not loaded or not known.</summary>
    public long MemoryBytes { get; init; } = -1;
}

/// <summary>
/// Registry to replica: you should exist with this definition (wakes the sharded entity), on
/// <paramref name="Device"/> of your node when it has that device (null or absent: the node chooses).
/// </summary>
public sealed record EnsureReplica(ReplicaId Replica, ModelDefinition Definition, string? Device = null) : IWithReplicaId;

/// <summary>Registry to replica: you are no longer wanted here (scaled down or unregistered).</summary>
public sealed record StopReplica(ReplicaId Replica) : IWithReplicaId;

/// <summary>Replica to registry: this is my state now.</summary>
public sealed record ReplicaStatusReport(ReplicaStatus Status) : IServeMessage;

/// <summary>Replica to registry: which definition do I serve? Answered with <see cref="ModelResolved"/>.</summary>
public sealed record ResolveModel(ModelKey Key) : IServeMessage;

public sealed record ModelResolved(ModelKey Key, ModelDefinition? Definition) : IServeMessage;
