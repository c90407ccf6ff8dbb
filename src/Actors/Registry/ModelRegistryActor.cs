using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using Akka.Persistence;
using Serve.Actors.Hosting;
using Serve.Actors.Placement;
using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

/// <param name="RetireGrace">How long a replaced replica keeps running after its replacement serves, so
/// every gateway has seen the new catalog and requests already sent to it finish.</param>
public sealed record RegistrySettings(
    TimeSpan ReconcileInterval, TimeSpan PublishInterval, TimeSpan PublishDebounce, int SnapshotEvery, TimeSpan RetireGrace)
{
    /// <summary>How long planning waits after a new worker reports, so workers starting together are planned together.</summary>
    public TimeSpan NewWorkerSettle { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>The clock the settle and inventory waits are measured on (a fake one in tests).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    public static RegistrySettings Default { get; } =
        new(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(20), SnapshotEvery: 100, TimeSpan.FromSeconds(2));
}

/// <summary>
/// The cluster's one registry (a cluster singleton on the gateway role). It persists the desired state
/// (<see cref="DesiredState"/>: model versions, their settings and replica counts, default versions) as
/// events in the journal, so a cluster restarted from nothing comes back to it, and keeps the observed state
/// (each replica's status, each worker's devices) in memory. It plans where every replica goes with
/// <see cref="PlacementPlanner"/> (the allocation strategy follows the plan), wakes the planned replicas
/// through the shard region on a timer, retires replaced replicas once their replacements serve, stops
/// replicas that are no longer wanted, and publishes the catalog to every node.
/// </summary>
public sealed class ModelRegistryActor : ReceivePersistentActor, IWithTimers
{
    public const string CatalogTopic = "serve.catalog";
    public const string RegistryPersistenceId = "serve-model-registry";
    private const string ReconcileTimer = "reconcile";
    private const string PublishTimer = "publish";
    private const string DebounceTimer = "debounce";
    private const string ReplanTimer = "replan";

    /// <summary>How long placement waits for a worker that is up to report its devices.</summary>
    private static readonly TimeSpan InventoryWait = TimeSpan.FromSeconds(10);

    private readonly IActorRef _replicaRegion;
    private readonly RegistrySettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _mediator = DistributedPubSub.Get(Context.System).Mediator;
    private readonly string _incarnation = Guid.NewGuid().ToString("N");
    private readonly DesiredState _desired = new();
    private readonly Dictionary<ReplicaId, ReplicaStatus> _statuses = [];
    private readonly Dictionary<string, NodeInventory> _nodes = new(StringComparer.Ordinal);
    private readonly HashSet<ReplicaId> _retiring = [];

    // Worker members that are joining or up, and since when: placement waits (briefly) for their devices, so
    // a cluster that starts does not pile every replica on the first worker to report and then move them.
    private readonly Dictionary<string, DateTimeOffset> _workersUp = new(StringComparer.Ordinal);

    // Workers that start together report a few milliseconds apart, possibly before this registry has heard
    // they are members: placement waits this long after a new worker reports, for the others.
    private DateTimeOffset _settledAfter = DateTimeOffset.MinValue;
    private Dictionary<ModelKey, ModelPlan> _plans = [];

    // False until the first plan: the catalog says so, and readers keep a planned catalog from an earlier
    // registry meanwhile (it still routes to the replicas that keep running).
    private bool _planned;

    // True while Replan waits (a worker settles): the plan is older than the desired state.
    private bool _replanPending;

    // One past the highest replica index used per model version in this incarnation: an index given up
    // (scaled down, retired) is not taken again while sharding may still keep its shard on another node.
    private readonly Dictionary<ModelKey, int> _nextIndex = [];

    // Nodes that left the cluster (until one joins again at the same address).
    private readonly HashSet<string> _removed = new(StringComparer.Ordinal);
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
        Command<RegisterModel>(m => Change(_desired.Register(m.Definition, fromConfiguration: false, m.Limits)));
        Command<UnregisterModel>(m => Change(_desired.Unregister(m.Model, m.Version)));
        Command<ScaleModel>(m => Change(_desired.Scale(m.Model, m.Version, m.Replicas, m.Limits)));
        Command<SetDefaultVersion>(m => Change(_desired.SetDefault(m.Model, m.Version)));
        Command<ChangePlacement>(m => Change(_desired.Place(m)));
        Command<DefineTenant>(m => Change(_desired.DefineTenant(m.Tenant)));
        Command<UpdateTenant>(m => Change(_desired.UpdateTenant(m)));
        Command<AddTenantKey>(m => Change(_desired.AddTenantKey(m)));
        Command<RevokeTenantKey>(m => Change(_desired.RevokeTenantKey(m)));
        Command<RemoveTenant>(m => Change(_desired.RemoveTenant(m.Id)));
        Command<NodeInventory>(OnInventory);
        Command<RetireReplica>(m => Retire(m.Replica));
        Command<GetCatalog>(_ => Sender.Tell(Snapshot()));
        Command<ResolveModel>(m => Sender.Tell(new ModelResolved(m.Key, _desired.Find(m.Key))));
        Command<ReplicaStatusReport>(m => UpdateStatus(m.Status));
        Command<ClusterEvent.MemberRemoved>(m => ForgetNode(m.Member.Address.ToString()));
        Command<ClusterEvent.MemberJoined>(m => WorkerArriving(m.Member));
        Command<ClusterEvent.MemberUp>(m => WorkerArriving(m.Member));
        Command<ReplanTick>(_ => Replan());
        Command<ClusterEvent.IMemberEvent>(_ => { });
        Command<ReconcileTick>(_ =>
        {
            Replan();
            Reconcile();
        });
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
        // What was recovered may have been written in an earlier format (RegistryJournalSerializer): a
        // snapshot in today's format now means the next recovery starts from it.
        if (LastSequenceNr > 0)
        {
            SaveSnapshot(_desired.ToSnapshot());
        }

        // The workers already in the cluster (this registry took over): placement waits for their reports,
        // which also say which replicas they hold.
        foreach (var member in Cluster.Get(Context.System).State.Members)
        {
            WorkerArriving(member);
        }

        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberRemoved), typeof(ClusterEvent.MemberJoined), typeof(ClusterEvent.MemberUp));
        Timers.StartPeriodicTimer(ReconcileTimer, ReconcileTick.Instance, _settings.ReconcileInterval);
        Timers.StartPeriodicTimer(PublishTimer, PublishTick.Instance, _settings.PublishInterval);
        _log.Info("Model registry started (incarnation {0}) with {1} model version(s) from the journal", _incarnation, _desired.Models.Count);
        Replan();
        Changed();
    }

    /// <summary>
    /// Start-up models from a gateway's configuration: registered, or updated to what the configuration
    /// says; start-up models of an earlier configuration that this one no longer names are unregistered
    /// (models registered through the management API stay). The configuration is what the operator asked
    /// for: a model dropped from it must not come back from the journal with files nobody provides.
    /// </summary>
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

        var named = register.Models.Select(d => d.Key).ToHashSet();
        var removed = new List<string>();
        foreach (var stale in pending.Configured.Where(k => !named.Contains(k)).ToList())
        {
            foreach (var change in pending.ForgetConfigured(stale))
            {
                pending.Apply(change);
                events.Add(change);
            }

            removed.Add(stale.ToString());
        }

        var replyTo = Sender;
        PersistChanges(events, () => replyTo.Tell(new ModelsRegistered(_incarnation, [.. registered], [.. problems], [.. removed])));
    }

    private void Change(Decision decision)
    {
        var replyTo = Sender;
        if (decision.Result.Error is not null)
        {
            replyTo.Tell(decision.Result);
            return;
        }

        if (NoRoomFor(decision.Events) is { } noRoom)
        {
            replyTo.Tell(RegistryResult.Refused(ServeErrorKind.ResourceExhausted, noRoom));
            return;
        }

        PersistChanges(decision.Events, () => replyTo.Tell(decision.Result));
    }

    /// <summary>
    /// Why the changed model versions would not fit on the workers (declared memory, pins, spread), so the
    /// API says so instead of leaving replicas waiting forever; null when they fit, or when no worker has
    /// reported yet (nothing to judge by).
    /// </summary>
    private string? NoRoomFor(IReadOnlyList<RegistryEvent> events)
    {
        var changed = events.Select(e => e switch
        {
            ModelVersionRegistered r => r.Definition.Key,
            ModelVersionScaled s => s.Key,
            ModelVersionPlaced p => p.Key,
            _ => null,
        }).OfType<ModelKey>().ToHashSet();
        if (changed.Count == 0 || _nodes.Count == 0)
        {
            return null;
        }

        var trial = new DesiredState();
        trial.Restore(_desired.ToSnapshot());
        foreach (var change in events)
        {
            trial.Apply(change);
        }

        // Refused: a change that leaves more wanted replicas without a place than before, or placement rules
        // that some replica cannot follow. A scale down never is.
        var plans = PlacementPlanner.Plan([.. trial.Models], [.. _nodes.Values], CurrentAssignments(), _nextIndex);
        return changed.Select(key =>
        {
            var after = plans.GetValueOrDefault(key);
            var shortfallBefore = _plans.GetValueOrDefault(key)?.Shortfall ?? 0;
            var placementChanged = events.OfType<ModelVersionPlaced>().Any(p => p.Key == key);
            return after?.Unplaced is { } why && (after.Shortfall > shortfallBefore || placementChanged) ? why : null;
        }).OfType<string>().FirstOrDefault();
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
            _desired.Apply(change);
            _log.Info("Registry: {0}", change);
            if (LastSequenceNr % _settings.SnapshotEvery == 0)
            {
                SaveSnapshot(_desired.ToSnapshot());
            }

            if (--remaining == 0)
            {
                Replan();
                Changed();
                answer();
            }
        });
    }

    private Dictionary<ModelKey, ReplicaAssignment[]> CurrentAssignments() =>
        _plans.ToDictionary(p => p.Key, p => p.Value.Assignments);

    private ReplicaAssignment? AssignmentOf(ReplicaId replica) =>
        _plans.GetValueOrDefault(replica.Key)?.Assignments.FirstOrDefault(a => a.Index == replica.Index);

    /// <summary>
    /// Plans placement again and acts on the difference: wakes newly placed replicas (on their planned
    /// device), stops replicas no longer planned, and retires replaced ones whose replacements serve.
    /// </summary>
    private void Replan()
    {
        var now = _settings.Time.GetUtcNow();
        if (now < _settledAfter
            || _workersUp.Any(w => !_nodes.ContainsKey(w.Key) && now - w.Value < InventoryWait))
        {
            Timers.StartSingleTimer(ReplanTimer, ReplanTick.Instance, TimeSpan.FromMilliseconds(200));
            _replanPending = true;
            return;
        }

        var before = _plans;
        var firstPlan = !_planned;
        var wasPending = _replanPending;
        _replanPending = false;
        _plans = PlacementPlanner.Plan([.. _desired.Models], [.. _nodes.Values], CurrentAssignments(), _nextIndex);
        _planned = true;
        foreach (var assignment in _plans.SelectMany(p => p.Value.Assignments.Select(a => new ReplicaId(p.Key.Name, p.Key.Version, a.Index))))
        {
            NoteIndex(assignment);
        }

        foreach (var (key, plan) in before)
        {
            var kept = _plans.GetValueOrDefault(key)?.Assignments.Select(a => a.Index).ToHashSet() ?? [];
            foreach (var gone in plan.Assignments.Where(a => !kept.Contains(a.Index)))
            {
                var replica = new ReplicaId(key.Name, key.Version, gone.Index);
                _replicaRegion.Tell(new StopReplica(replica));
                _statuses.Remove(replica);
                _retiring.Remove(replica);
            }
        }

        var changed = firstPlan || wasPending || before.Count != _plans.Count;
        foreach (var (key, plan) in _plans)
        {
            var previous = before.GetValueOrDefault(key);
            if (plan.Unplaced is { } why && why != previous?.Unplaced)
            {
                _log.Warning("Placement: {0}", why);
            }

            changed |= previous is null || previous.Unplaced != plan.Unplaced || !previous.Assignments.SequenceEqual(plan.Assignments);
            var definition = _desired.Find(key)!;
            foreach (var added in plan.Active.Where(a => previous?.Assignments.Contains(a) != true))
            {
                _replicaRegion.Tell(new EnsureReplica(new ReplicaId(key.Name, key.Version, added.Index), definition, added.Device));
            }
        }

        RetireReplaced();
        if (changed)
        {
            Changed();
        }
    }

    /// <summary>Replaced replicas stop once every active replica of their model version serves (after a grace period).</summary>
    private void RetireReplaced()
    {
        foreach (var (key, plan) in _plans)
        {
            var replaced = plan.Assignments.Where(a => a.Retiring).ToList();
            if (replaced.Count == 0 || !plan.Active.All(a => IsServing(key, a)))
            {
                continue;
            }

            foreach (var assignment in replaced)
            {
                var replica = new ReplicaId(key.Name, key.Version, assignment.Index);
                if (_retiring.Add(replica))
                {
                    Timers.StartSingleTimer($"retire:{replica}", new RetireReplica(replica), _settings.RetireGrace);
                }
            }
        }
    }

    private void NoteIndex(ReplicaId replica) =>
        _nextIndex[replica.Key] = Math.Max(_nextIndex.GetValueOrDefault(replica.Key), replica.Index + 1);

    private bool IsServing(ModelKey key, ReplicaAssignment assignment) =>
        _statuses.GetValueOrDefault(new ReplicaId(key.Name, key.Version, assignment.Index)) is { State: ReplicaState.Ready } status
        && status.NodeAddress == assignment.NodeAddress;

    private void Retire(ReplicaId replica)
    {
        _retiring.Remove(replica);
        if (_plans.GetValueOrDefault(replica.Key) is not { } plan || AssignmentOf(replica) is not { Retiring: true })
        {
            return;
        }

        if (!plan.Active.All(a => IsServing(replica.Key, a)))
        {
            return; // the replacement stopped serving during the grace period: the old one stays for now
        }

        _log.Info("Placement: replica {0} retires; its replacement serves", replica);
        _replicaRegion.Tell(new StopReplica(replica));
        _statuses.Remove(replica);
        _plans[replica.Key] = plan with { Assignments = [.. plan.Assignments.Where(a => a.Index != replica.Index)] };
        Replan();
        Changed();
    }

    private void WorkerArriving(Member member)
    {
        if (member.HasRole(ServeRoles.Worker) && member.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up)
        {
            _workersUp.TryAdd(member.Address.ToString(), _settings.Time.GetUtcNow());
            _removed.Remove(member.Address.ToString());
        }
    }

    private void OnInventory(NodeInventory inventory)
    {
        // A report that arrives after its node left must not bring the node back.
        if (_removed.Contains(inventory.Address))
        {
            return;
        }

        var previous = _nodes.GetValueOrDefault(inventory.Address);
        _nodes[inventory.Address] = inventory;
        if (previous is null)
        {
            _settledAfter = _settings.Time.GetUtcNow() + _settings.NewWorkerSettle;
        }

        var adopted = AdoptHosted(inventory);
        if (previous is null || !previous.SameDevices(inventory) || adopted)
        {
            if (previous is null || !previous.SameDevices(inventory))
            {
                _log.Info("Worker {0} ({1}) has {2}", inventory.Name, inventory.Address,
                    string.Join(", ", inventory.Devices.Select(d => $"{d.Name} ({d.TotalMemoryMb} MB)")));
            }

            Replan();
            Changed();
        }
        else if (!previous.Devices.SequenceEqual(inventory.Devices))
        {
            Changed(); // the measured use changed
        }
    }

    /// <summary>
    /// Replicas a worker holds that the plan does not know (they ran before this registry took over) are
    /// adopted where they run while their model version needs them; true when any was.
    /// </summary>
    private bool AdoptHosted(NodeInventory inventory)
    {
        var adopted = false;
        foreach (var hosted in inventory.Hosted)
        {
            if (_desired.Find(hosted.Replica.Key) is not { } definition || AssignmentOf(hosted.Replica) is not null
                || (_plans.GetValueOrDefault(hosted.Replica.Key)?.Active.Count() ?? 0) >= definition.Replicas)
            {
                continue;
            }

            var plan = _plans.GetValueOrDefault(hosted.Replica.Key) ?? new ModelPlan([], null);
            var where = new ReplicaAssignment(hosted.Replica.Index, inventory.Address, hosted.Device, Retiring: false);
            _plans[hosted.Replica.Key] = plan with { Assignments = [.. plan.Assignments.Append(where).OrderBy(a => a.Index)] };
            NoteIndex(hosted.Replica);
            adopted = true;
        }

        return adopted;
    }

    private void UpdateStatus(ReplicaStatus status)
    {
        if (_desired.Find(status.Replica.Key) is not { } definition)
        {
            StopUnwanted(status);
            return;
        }

        var assignment = AssignmentOf(status.Replica);
        if (assignment is null)
        {
            // A replica this registry did not place: one that runs from before this registry took over is
            // adopted while its model version needs replicas; otherwise (scaled down or replaced while its
            // node was away) it stops.
            var active = _plans.GetValueOrDefault(status.Replica.Key)?.Active.Count() ?? 0;
            if (status.State == ReplicaState.Stopped || active >= definition.Replicas)
            {
                StopUnwanted(status);
                return;
            }

            if (status.Device.Length == 0)
            {
                return; // judged once it has a device
            }

            Adopt(status);
        }
        else if (status.State != ReplicaState.Stopped && !assignment.Retiring && status.Device.Length > 0
                 && (assignment.NodeAddress != status.NodeAddress || assignment.Device != status.Device))
        {
            // Sharding or the node chose otherwise than planned (the plan is advice): once the replica
            // holds a device, the plan follows where it really is, then judges whether it may stay there.
            Adopt(status);
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
            RetireReplaced();
        }
    }

    private void StopUnwanted(ReplicaStatus status)
    {
        if (status.State != ReplicaState.Stopped)
        {
            _replicaRegion.Tell(new StopReplica(status.Replica));
        }
    }

    private void Adopt(ReplicaStatus status)
    {
        var key = status.Replica.Key;
        var plan = _plans.GetValueOrDefault(key) ?? new ModelPlan([], null);
        var where = new ReplicaAssignment(status.Replica.Index, status.NodeAddress, status.Device, Retiring: false);
        _plans[key] = plan with { Assignments = [.. plan.Assignments.Where(a => a.Index != where.Index).Append(where).OrderBy(a => a.Index)] };
        _statuses[status.Replica] = status;
        NoteIndex(status.Replica);
        Replan();
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

        var hadDevices = _nodes.Remove(address);
        _workersUp.Remove(address);
        _removed.Add(address);
        var placed = 0;
        foreach (var (key, plan) in _plans.ToList())
        {
            placed += plan.Assignments.Count(a => a.NodeAddress == address);
            _plans[key] = plan with { Assignments = [.. plan.Assignments.Where(a => a.NodeAddress != address)] };
        }

        if (gone.Count > 0 || placed > 0 || hadDevices)
        {
            _log.Info("Node {0} left; its {1} replica(s) will be placed again", address, placed);
            Replan();
            Changed();
            Reconcile();
        }
    }

    /// <summary>Wakes every placed, active replica (sharding starts it again wherever its shard lives).</summary>
    private void Reconcile()
    {
        foreach (var (key, plan) in _plans)
        {
            if (_desired.Find(key) is not { } definition)
            {
                continue;
            }

            foreach (var assignment in plan.Active)
            {
                _replicaRegion.Tell(new EnsureReplica(new ReplicaId(key.Name, key.Version, assignment.Index), definition, assignment.Device));
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
            .Select(d =>
            {
                var plan = _plans.GetValueOrDefault(d.Key) ?? new ModelPlan([], null);
                return new CatalogEntry(
                    d,
                    _desired.IsDefault(d),
                    [.. plan.Assignments.Select(a => _statuses.GetValueOrDefault(new ReplicaId(d.Name, d.Version, a.Index))).OfType<ReplicaStatus>()])
                {
                    Assignments = plan.Assignments,
                    Unplaced = plan.Unplaced,
                };
            })
            .ToArray();
        return new CatalogSnapshot(_incarnation, _revision, entries)
        {
            Nodes = [.. _nodes.Values.OrderBy(n => n.Address, StringComparer.Ordinal)],
            Planned = _planned,
            ReplanPending = _replanPending,
            Tenants = [.. _desired.Tenants],
        };
    }

    private sealed record RetireReplica(ReplicaId Replica);

    private sealed record ReplanTick
    {
        public static ReplanTick Instance { get; } = new();
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
