using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Persistence;
using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

public sealed record RegistrySettings(TimeSpan ReconcileInterval, TimeSpan PublishInterval, TimeSpan PublishDebounce, int SnapshotEvery)
{
    public static RegistrySettings Default { get; } =
        new(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(20), SnapshotEvery: 100);
}

/// <summary>
/// The cluster's one registry (a cluster singleton on the gateway role). It persists the desired state
/// (<see cref="DesiredState"/>: model versions, their settings and replica counts, default versions) as
/// events in the journal, so a cluster restarted from nothing comes back to it, and keeps the observed state
/// (each replica's status) in memory. It wakes every desired replica through the shard region on a timer,
/// so replicas come back wherever sharding places them, stops replicas that are no longer wanted, and
/// publishes the catalog to every gateway.
/// </summary>
public sealed class ModelRegistryActor : ReceivePersistentActor, IWithTimers
{
    public const string CatalogTopic = "serve.catalog";
    public const string RegistryPersistenceId = "serve-model-registry";
    private const string ReconcileTimer = "reconcile";
    private const string PublishTimer = "publish";
    private const string DebounceTimer = "debounce";

    private readonly IActorRef _replicaRegion;
    private readonly RegistrySettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _mediator = DistributedPubSub.Get(Context.System).Mediator;
    private readonly string _incarnation = Guid.NewGuid().ToString("N");
    private readonly DesiredState _desired = new();
    private readonly Dictionary<ReplicaId, ReplicaStatus> _statuses = [];
    private long _revision;

    public ModelRegistryActor(IActorRef replicaRegion, RegistrySettings settings)
    {
        _replicaRegion = replicaRegion;
        _settings = settings;

        Recover<RegistryEvent>(e => _desired.Apply(e));
        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is RegistrySnapshot snapshot)
            {
                _desired.Restore(snapshot);
            }
        });
        Recover<RecoveryCompleted>(_ => OnRecovered());

        Command<RegisterModels>(RegisterStartupModels);
        Command<RegisterModel>(m => Change(_desired.Register(m.Definition, fromConfiguration: false)));
        Command<UnregisterModel>(m => Change(_desired.Unregister(m.Model, m.Version)));
        Command<ScaleModel>(m => Change(_desired.Scale(m.Model, m.Version, m.Replicas)));
        Command<SetDefaultVersion>(m => Change(_desired.SetDefault(m.Model, m.Version)));
        Command<GetCatalog>(_ => Sender.Tell(Snapshot()));
        Command<ResolveModel>(m => Sender.Tell(new ModelResolved(m.Key, _desired.Find(m.Key))));
        Command<ReplicaStatusReport>(m => UpdateStatus(m.Status));
        Command<ClusterEvent.MemberRemoved>(m => ForgetNode(m.Member.Address.ToString()));
        Command<ClusterEvent.IMemberEvent>(_ => { });
        Command<ReconcileTick>(_ => Reconcile());
        Command<PublishTick>(_ => PublishCatalog());
        Command<SaveSnapshotSuccess>(_ => { });
        Command<SaveSnapshotFailure>(f => _log.Warning("Registry snapshot failed: {0}", f.Cause.Message));
    }

    public override string PersistenceId => RegistryPersistenceId;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(IActorRef replicaRegion, RegistrySettings settings) =>
        Akka.Actor.Props.Create(() => new ModelRegistryActor(replicaRegion, settings));

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);

    private void OnRecovered()
    {
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberRemoved));
        Timers.StartPeriodicTimer(ReconcileTimer, ReconcileTick.Instance, _settings.ReconcileInterval);
        Timers.StartPeriodicTimer(PublishTimer, PublishTick.Instance, _settings.PublishInterval);
        _log.Info("Model registry started (incarnation {0}) with {1} model version(s) from the journal", _incarnation, _desired.Models.Count);
        Reconcile();
        Changed();
    }

    /// <summary>Start-up models from a gateway's configuration: registered, or updated to what the configuration says.</summary>
    private void RegisterStartupModels(RegisterModels register)
    {
        var registered = new List<string>();
        var problems = new List<string>();
        var events = new List<RegistryEvent>();
        var pending = new DesiredState();
        pending.Restore(_desired.ToSnapshot());
        foreach (var definition in register.Models)
        {
            var decision = pending.Register(definition, fromConfiguration: true);
            if (decision.Result.Error is { } error)
            {
                problems.Add($"{definition.Key}: {error.Message}");
                continue;
            }

            foreach (var change in decision.Events)
            {
                pending.Apply(change);
                events.Add(change);
                registered.Add(definition.Key.ToString());
            }
        }

        var replyTo = Sender;
        PersistChanges(events, () => replyTo.Tell(new ModelsRegistered(_incarnation, [.. registered], [.. problems])));
    }

    private void Change(Decision decision)
    {
        var replyTo = Sender;
        if (decision.Result.Error is not null)
        {
            replyTo.Tell(decision.Result);
            return;
        }

        PersistChanges(decision.Events, () => replyTo.Tell(decision.Result));
    }

    /// <summary>Persists the events, applies each, acts on the cluster, then answers.</summary>
    private void PersistChanges(IReadOnlyList<RegistryEvent> events, Action answer)
    {
        if (events.Count == 0)
        {
            answer();
            return;
        }

        var remaining = events.Count;
        PersistAll(events, change =>
        {
            var before = Affected(change);
            _desired.Apply(change);
            _log.Info("Registry: {0}", change);
            Act(change, before);
            if (LastSequenceNr % _settings.SnapshotEvery == 0)
            {
                SaveSnapshot(_desired.ToSnapshot());
            }

            if (--remaining == 0)
            {
                Changed();
                answer();
            }
        });
    }

    private ModelDefinition? Affected(RegistryEvent change) => change switch
    {
        ModelVersionRegistered r => _desired.Find(r.Definition.Key),
        ModelVersionUnregistered u => _desired.Find(u.Key),
        ModelVersionScaled s => _desired.Find(s.Key),
        _ => null,
    };

    /// <summary>Brings the cluster toward the new desired state: wake new replicas, stop unwanted ones.</summary>
    private void Act(RegistryEvent change, ModelDefinition? before)
    {
        var wanted = change switch
        {
            ModelVersionRegistered r => r.Definition,
            ModelVersionScaled s => _desired.Find(s.Key),
            _ => null,
        };
        foreach (var replica in wanted?.ReplicaIds ?? [])
        {
            _replicaRegion.Tell(new EnsureReplica(replica, wanted!));
        }

        var kept = wanted?.ReplicaIds.ToHashSet() ?? [];
        foreach (var replica in before?.ReplicaIds.Where(r => !kept.Contains(r)) ?? [])
        {
            _replicaRegion.Tell(new StopReplica(replica));
            _statuses.Remove(replica);
        }
    }

    private void UpdateStatus(ReplicaStatus status)
    {
        if (_desired.Find(status.Replica.Key) is not { } definition || status.Replica.Index >= definition.Replicas)
        {
            // A replica nobody wants any more (its model was removed or scaled down, perhaps while its node
            // was away): tell it to stop.
            if (status.State != ReplicaState.Stopped)
            {
                _replicaRegion.Tell(new StopReplica(status.Replica));
            }

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
            Reconcile();
        }
    }

    private void Reconcile()
    {
        foreach (var definition in _desired.Models)
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

    private void PublishCatalog() => _mediator.Tell(new Publish(CatalogTopic, Snapshot()));

    private CatalogSnapshot Snapshot()
    {
        var entries = _desired.Models
            .OrderBy(d => d.Name, StringComparer.Ordinal)
            .ThenBy(d => d.Version, StringComparer.Ordinal)
            .Select(d => new CatalogEntry(
                d,
                _desired.IsDefault(d),
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
