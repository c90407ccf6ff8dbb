using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

public sealed record RegistrySettings(TimeSpan ReconcileInterval, TimeSpan PublishInterval, TimeSpan PublishDebounce)
{
    public static RegistrySettings Default { get; } =
        new(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(20));
}

/// <summary>
/// The cluster's one registry (a cluster singleton on the gateway role): the desired state (model versions,
/// default versions, replica counts, serving settings) and the observed state (each replica's status).
/// It wakes every desired replica through the shard region on a timer, so replicas come back wherever
/// sharding places them after a node is lost, and publishes the catalog to every gateway.
/// This issue's registry lives in memory; persistence comes with the management API.
/// </summary>
public sealed class ModelRegistryActor : ReceiveActor, IWithTimers
{
    public const string CatalogTopic = "serve.catalog";
    private const string ReconcileTimer = "reconcile";
    private const string PublishTimer = "publish";
    private const string DebounceTimer = "debounce";

    private readonly IActorRef _replicaRegion;
    private readonly RegistrySettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _mediator = DistributedPubSub.Get(Context.System).Mediator;
    private readonly string _incarnation = Guid.NewGuid().ToString("N");
    private readonly Dictionary<ModelKey, ModelDefinition> _models = [];
    private readonly Dictionary<string, string> _defaultVersions = new(StringComparer.Ordinal);
    private readonly Dictionary<ReplicaId, ReplicaStatus> _statuses = [];
    private long _revision;

    public ModelRegistryActor(IActorRef replicaRegion, RegistrySettings settings)
    {
        _replicaRegion = replicaRegion;
        _settings = settings;

        Receive<RegisterModels>(Register);
        Receive<GetCatalog>(_ => Sender.Tell(Snapshot()));
        Receive<ResolveModel>(m => Sender.Tell(new ModelResolved(m.Key, _models.GetValueOrDefault(m.Key))));
        Receive<ReplicaStatusReport>(m => UpdateStatus(m.Status));
        Receive<ClusterEvent.MemberRemoved>(m => ForgetNode(m.Member.Address.ToString()));
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<ReconcileTick>(_ => EnsureAllReplicas());
        Receive<PublishTick>(_ => PublishCatalog());
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(IActorRef replicaRegion, RegistrySettings settings) =>
        Akka.Actor.Props.Create(() => new ModelRegistryActor(replicaRegion, settings));

    protected override void PreStart()
    {
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberRemoved));
        Timers.StartPeriodicTimer(ReconcileTimer, ReconcileTick.Instance, _settings.ReconcileInterval);
        Timers.StartPeriodicTimer(PublishTimer, PublishTick.Instance, _settings.PublishInterval);
        _log.Info("Model registry started (incarnation {0})", _incarnation);
    }

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);

    private void Register(RegisterModels register)
    {
        var registered = new List<string>();
        var problems = new List<string>();
        foreach (var definition in register.Models)
        {
            var invalid = definition.Validate();
            if (invalid.Count > 0)
            {
                problems.Add($"{definition.Key}: {string.Join("; ", invalid)}");
                continue;
            }

            if (_models.TryGetValue(definition.Key, out var existing))
            {
                if (existing != definition)
                {
                    problems.Add($"{definition.Key}: already registered with other settings");
                }

                continue;
            }

            _models[definition.Key] = definition;
            _defaultVersions.TryAdd(definition.Name, definition.Version);
            registered.Add(definition.Key.ToString());
            _log.Info("Registered model {0} ({1} replicas, handler {2})", definition.Key, definition.Replicas, definition.Handler);
            foreach (var replica in definition.ReplicaIds)
            {
                _replicaRegion.Tell(new EnsureReplica(replica, definition));
            }
        }

        Sender.Tell(new ModelsRegistered(_incarnation, [.. registered], [.. problems]));
        if (registered.Count > 0)
        {
            Changed();
        }
    }

    private void UpdateStatus(ReplicaStatus status)
    {
        if (!_models.TryGetValue(status.Replica.Key, out var definition) || status.Replica.Index >= definition.Replicas)
        {
            return;
        }

        if (status.State == ReplicaState.Stopped)
        {
            // A stopped replica says so from the node it left; a newer report from its new node wins.
            if (_statuses.TryGetValue(status.Replica, out var current) && current.NodeAddress != status.NodeAddress)
            {
                return;
            }
        }

        var previous = _statuses.GetValueOrDefault(status.Replica);
        _statuses[status.Replica] = status;
        if (previous is null || MeaningfullyDifferent(previous, status))
        {
            Changed();
        }
    }

    private static bool MeaningfullyDifferent(ReplicaStatus a, ReplicaStatus b) =>
        a.State != b.State || a.NodeAddress != b.NodeAddress || a.Device != b.Device
        || a.Restarts != b.Restarts || a.LastError != b.LastError || a.Signature != b.Signature;

    private void ForgetNode(string address)
    {
        var gone = _statuses.Where(s => s.Value.NodeAddress == address).Select(s => s.Key).ToList();
        foreach (var replica in gone)
        {
            _statuses.Remove(replica);
        }

        if (gone.Count > 0)
        {
            _log.Info("Node {0} left; its {1} replica(s) will be placed again", address, gone.Count);
            Changed();
            EnsureAllReplicas();
        }
    }

    private void EnsureAllReplicas()
    {
        foreach (var definition in _models.Values)
        {
            foreach (var replica in definition.ReplicaIds)
            {
                _replicaRegion.Tell(new EnsureReplica(replica, definition));
            }
        }
    }

    private void Changed()
    {
        _revision++;
        if (!Timers.IsTimerActive(DebounceTimer))
        {
            Timers.StartSingleTimer(DebounceTimer, PublishTick.Instance, _settings.PublishDebounce);
        }
    }

    private void PublishCatalog() =>
        _mediator.Tell(new Publish(CatalogTopic, Snapshot()));

    private CatalogSnapshot Snapshot()
    {
        var entries = _models.Values
            .OrderBy(d => d.Name, StringComparer.Ordinal)
            .ThenBy(d => d.Version, StringComparer.Ordinal)
            .Select(d => new CatalogEntry(
                d,
                _defaultVersions.GetValueOrDefault(d.Name) == d.Version,
                [.. d.ReplicaIds.Select(r => _statuses.GetValueOrDefault(r)).OfType<ReplicaStatus>()]))
            .ToArray();
        return new CatalogSnapshot(_incarnation, _revision, entries);
    }

    private sealed record ReconcileTick
    {
        public static ReconcileTick Instance { get; } = new();
    }

    private sealed record PublishTick
    {
        public static PublishTick Instance { get; } = new();
    }
}
