namespace Serve.Actors.Hosting;

/// <summary>Akka.Hosting registry key: the model replica shard region (or its proxy on gateway-only nodes).</summary>
public sealed class ModelReplicaRegion;

/// <summary>Akka.Hosting registry key: the proxy to the model registry singleton.</summary>
public sealed class ModelRegistry;

/// <summary>Akka.Hosting registry key: this node's catalog subscriber.</summary>
public sealed class CatalogSubscriberKey;
