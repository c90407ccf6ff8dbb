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
                SeedNodes = options.Seeds.Length > 0 ? options.SeedAddresses : null,
                SplitBrainResolver = SplitBrainResolverOption.Default,
            })
            .AddHocon(
                $$"""
                akka.cluster.split-brain-resolver.stable-after = {{(int)options.StableAfter.TotalMilliseconds}}ms
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
                () => registry.TryGet<ModelRegistry>(out var proxy) ? proxy : null, devices, hosted, nodeName), "inventory-reporter");
            var sharding = ClusterSharding.Get(system);
            // Everything else about sharding is in the HOCON of WithServeCluster, which proxies read too.
            var shardingSettings = ClusterShardingSettings.Create(system).WithRole(ServeRoles.Worker);
            var region = await sharding.StartAsync(
                ReplicaMessageExtractor.TypeName,
                entityId => ReplicaId.TryParse(entityId, out var replica)
                    ? ModelActor.Props(replica, backend, registry.Get<ModelRegistry>(), settings, local)
                    : throw new ArgumentException($"'{entityId}' is not a replica id (model/version/index)"),
                shardingSettings,
                new ReplicaMessageExtractor(),
                new ReplicaAllocationStrategy(catalog, Cluster.Get(system).SelfAddress, TimeSpan.FromSeconds(2), address =>
                    Cluster.Get(system).State.Members.Any(m =>
                        m.Address.ToString() == address && m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up)),
                HandOff.Instance);
            registry.Register<ModelReplicaRegion>(region);
        });
    }

    /// <summary>Gateway-only nodes reach the replicas on workers through a shard region proxy.</summary>
    public static AkkaConfigurationBuilder WithModelReplicaProxy(this AkkaConfigurationBuilder builder) =>
        builder.WithShardRegionProxy<ModelReplicaRegion>(
            ReplicaMessageExtractor.TypeName, ServeRoles.Worker, new ReplicaMessageExtractor());

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
