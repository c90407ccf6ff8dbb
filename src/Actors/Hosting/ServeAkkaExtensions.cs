using Akka.Actor;
using Akka.Pattern;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Akka.Remote.Transport.DotNetty;
using Serve.Actors.Models;
using Serve.Actors.Placement;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Actors.Hosting;

/// <summary>Akka.Hosting building blocks shared by the gateway, the worker and the standalone node.</summary>
public static class ServeAkkaExtensions
{
    public const string RegistrySingletonName = "model-registry";

    private static RemoteOptions Remoting(ServeClusterOptions options)
    {
        var remote = new RemoteOptions
        {
            HostName = options.Hostname,
            Port = options.Port,
            PublicHostName = options.PublicHostname,
            MaxFrameSize = options.MaximumFrameSizeBytes,
            SendBufferSize = options.MaximumFrameSizeBytes * 2,
            ReceiveBufferSize = options.MaximumFrameSizeBytes * 2,
        };
        if (options.TlsEnabled)
        {
            var certificate = options.Tls.Load();
            remote.EnableSsl = true;
            remote.Ssl = new SslOptions
            {
                X509Certificate = certificate,
                SuppressValidation = false,
                RequireMutualAuthentication = true,
                // Nodes are reached by address, not name; trust is the pinned certificates themselves.
                ValidateCertificateHostname = false,
                CustomValidator = CertificateValidation.PinnedCertificate(options.Tls.AcceptedThumbprints(certificate)),
            };
        }

        return remote;
    }

    /// <summary>Remoting, clustering, split-brain resolver, sharding defaults and the protocol serializer.</summary>
    public static AkkaConfigurationBuilder WithServeCluster(
        this AkkaConfigurationBuilder builder, ServeClusterOptions options, IReadOnlyCollection<string> roles)
    {
        builder
            .WithRemoting(Remoting(options))
            .WithClustering(new ClusterOptions
            {
                Roles = [.. roles],
                SeedNodes = options.Seeds.Length > 0 ? KnownMembers.SeedsWithRemembered(options) : null,
                SplitBrainResolver = SplitBrainResolverOption.Default,
            })
            .AddHocon(
                $$"""
                akka.cluster.split-brain-resolver.stable-after = {{(int)options.StableAfter.TotalMilliseconds}}ms
                akka.cluster.failure-detector.acceptable-heartbeat-pause = {{(int)options.HeartbeatPause.TotalMilliseconds}}ms
                # Heartbeats twice a second (default once): a dead node is marked unreachable about 0.5 s sooner,
                # for a few dozen bytes a second per monitored peer.
                akka.cluster.failure-detector.heartbeat-interval = 500ms
                # Gossip twice a second and leader actions four times (defaults: once each): a node downed is
                # seen as down, removed, and seen as removed by every node sooner, so a dead gateway's
                # singletons start elsewhere about 1.5 s sooner. Gossip is a digest while nothing changes.
                akka.cluster.gossip-interval = 500ms
                akka.cluster.leader-actions-interval = 250ms
                # Proxies look for a moved singleton every 250 ms (default 1 s).
                akka.cluster.singleton-proxy.singleton-identification-interval = 250ms
                # A singleton or shard of a downed node starts elsewhere this long after its removal (the default
                # is stable-after again). Its purpose is to let the downed side stop its own copy first; the
                # registry's journal refuses a second writer anyway, and a replica holds no state to diverge.
                akka.cluster.down-removal-margin = 1s
                akka.cluster.singleton-proxy.log-singleton-identification-failure = off
                # Akka's JSON serializer (bound to System.Object) instantiates the types a frame names: replaced
                # by one that refuses both ways, under the same name and identifier.
                akka.actor.serializers.json = "{{typeof(UnboundTypeSerializer).AssemblyQualifiedName}}"
                # The one place for sharding's settings: the region (only its role is set in code) and the
                # proxies read them.
                akka.cluster.sharding {
                  # Replicas hold loaded models: never stop one for being idle.
                  passivate-idle-entity-after = off
                  state-store-mode = ddata
                  remember-entities = off
                  # The LMDB durable store does not work with the LightningDB version served; nothing needs it.
                  distributed-data.durable.keys = []
                  rebalance-interval = 5s
                  # A plain majority (the defaults add 3 and 5 nodes and count at least 5, so a small cluster needs
                  # every node): with a worker unreachable, the coordinator must still allocate the shards of its
                  # replacements.
                  coordinator-state.write-majority-plus = 0
                  coordinator-state.read-majority-plus = 0
                  distributed-data.majority-min-cap = 1
                }
                """,
                HoconAddMode.Prepend)
            .WithCustomSerializer(ServeSerialization.SerializerName, [typeof(IServeMessage)], ServeSerialization.Create)
            // The registry's journal: its events and snapshot by exact type, so this binding wins over the one above.
            .WithCustomSerializer(RegistryJournalSerializer.Name, RegistryJournalSerializer.Types, system => new RegistryJournalSerializer(system));

        if (options.Seeds.Length == 0)
        {
            // No seeds: a cluster of one (standalone). Join ourselves once remoting knows its real port.
            builder.WithActors((system, _) => Cluster.Get(system).Join(Cluster.Get(system).SelfAddress));
        }

        if (options.MembersFile is { Length: > 0 } membersFile)
        {
            builder.WithActors((system, _) => system.ActorOf(KnownMembersWriter.Props(membersFile), "known-members"));
        }

        return builder;
    }

    /// <summary>
    /// Worker role: the shard region that hosts model replicas, placed by <see cref="ReplicaAllocationStrategy"/>.
    /// Replicas reach the registry through the <see cref="ModelRegistry"/> proxy, resolved when each starts.
    /// </summary>
    /// <param name="devices">This node's devices, reported to the registry for placement.</param>
    /// <param name="hosted">The replicas loaded on this node, reported with the devices.</param>
    /// <param name="nodeName">The name placement pins use (null: host:port).</param>
    /// <param name="catalog">This node's catalog view: the allocation strategy follows the plan in it.</param>
    public static AkkaConfigurationBuilder WithModelReplicaShards(
        this AkkaConfigurationBuilder builder, IInferenceBackend backend, ModelActorSettings settings, LocalReplicas local,
        Func<DeviceCapacity[]> devices, Func<HostedReplica[]> hosted, string? nodeName, CatalogView catalog)
    {
        return builder.StartActors(async (system, registry) =>
        {
            system.ActorOf(InventoryReporter.Props(
                () => registry.TryGet<ModelRegistry>(out var proxy) ? proxy : null, devices, hosted, nodeName, local),
                InventoryReporter.ActorName);
            registry.Register<ModelReplicaRegion>(await StartReplicaRegionAsync(system, catalog, entityId => ReplicaId.TryParse(entityId, out var replica)
                ? ModelActor.Props(replica, backend, registry.Get<ModelRegistry>(), settings, local)
                : throw new ArgumentException($"'{entityId}' is not a replica id (model/version/index)")));
        });
    }

    /// <summary>
    /// Gateway-only nodes start the replica shard region too, hosting no replica (the allocation strategy
    /// gives replicas to workers only): the region is how they send to replicas, and sharding's coordinator
    /// runs on the oldest node of the region, normally the first gateway, where a worker's failure cannot
    /// take it down. (With a region proxy it lived on the oldest worker: killing that worker stalled every
    /// new replica until it was downed and the coordinator had moved.)
    /// </summary>
    public static AkkaConfigurationBuilder WithModelReplicaRouting(this AkkaConfigurationBuilder builder, CatalogView catalog) =>
        builder.StartActors(async (system, registry) =>
            registry.Register<ModelReplicaRegion>(await StartReplicaRegionAsync(system, catalog,
                entityId => throw new InvalidOperationException($"replica {entityId} was sent to a gateway-only node, which hosts no replicas"))));

    /// <summary>
    /// The replica shard region on every node (no role: gateways host the coordinator, workers the replicas).
    /// Everything else about sharding is in the HOCON of WithServeCluster, which every region reads.
    /// </summary>
    private static Task<IActorRef> StartReplicaRegionAsync(ActorSystem system, CatalogView catalog, Func<string, Props> entityProps)
    {
        var cluster = Cluster.Get(system);
        return ClusterSharding.Get(system).StartAsync(
            ReplicaMessageExtractor.TypeName,
            entityProps,
            ClusterShardingSettings.Create(system),
            new ReplicaMessageExtractor(),
            new ReplicaAllocationStrategy(catalog, cluster.SelfAddress, TimeSpan.FromSeconds(2), address =>
                cluster.State.Members.Any(m => m.Address.ToString() == address && m.HasRole(ServeRoles.Worker)
                                               && m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up)),
            HandOff.Instance);
    }

    /// <summary>
    /// The registry singleton (on the oldest gateway) and a proxy to it on this node. A persistent actor
    /// stops when its journal fails, and a stopped singleton is never started again: a backoff supervisor
    /// restarts it (1 s doubling to 30 s) until the journal is back.
    /// </summary>
    public static AkkaConfigurationBuilder WithModelRegistry(this AkkaConfigurationBuilder builder, RegistrySettings settings) =>
        builder.WithSingleton<ModelRegistry>(
            RegistrySingletonName,
            (_, registry, _) => BackoffSupervisor.Props(Backoff.OnStop(
                ModelRegistryActor.Props(registry.Get<ModelReplicaRegion>(), settings),
                "registry", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, maxNrOfRetries: -1)),
            new ClusterSingletonOptions { Role = ServeRoles.Gateway, LogSingletonIdentificationFailure = false },
            createProxyToo: true);

    /// <summary>Worker-only nodes talk to the registry through a proxy.</summary>
    public static AkkaConfigurationBuilder WithModelRegistryProxy(this AkkaConfigurationBuilder builder) =>
        builder.WithSingletonProxy<ModelRegistry>(
            RegistrySingletonName,
            new ClusterSingletonOptions { Role = ServeRoles.Gateway, LogSingletonIdentificationFailure = false });

    /// <summary>Keeps <paramref name="view"/> in step with the registry's catalog.</summary>
    public static AkkaConfigurationBuilder WithCatalogView(this AkkaConfigurationBuilder builder, CatalogView view) =>
        builder.WithActors((system, registry) =>
            registry.Register<CatalogSubscriberKey>(
                system.ActorOf(CatalogSubscriber.Props(view, registry.Get<ModelRegistry>()), "catalog-subscriber")));
}
