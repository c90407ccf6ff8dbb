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

    /// <summary>
    /// How long a worker stays unreachable before its replicas are replaced on the reachable workers, without
    /// waiting for the split-brain resolver to down it. Longer than a reachability blip (a GC or CPU pause of
    /// a few seconds makes a node unreachable briefly), much shorter than downing.
    /// </summary>
    public TimeSpan ReplaceUnreachableAfter { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The clock the settle and inventory waits are measured on (a fake one in tests).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    public static RegistrySettings Default { get; } =
        new(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(20), SnapshotEvery: 100, TimeSpan.FromSeconds(2));
}

/// <summary>
/// The cluster's one registry (a cluster singleton on the gateway role): a shell over three plain objects.
/// <see cref="DesiredState"/> (model versions, their settings and replica counts, default versions,
/// tenants) is persisted as events in the journal, so a cluster restarted from nothing comes back to it;
/// <see cref="ObservedState"/> (each replica's status, each worker's devices) is kept in memory;
/// <see cref="PlanBook"/> says where every replica goes (the allocation strategy follows the plan). The
/// actor persists, sends the plan's commands through the shard region (waking planned replicas on a timer,
/// stopping unwanted ones, retiring replaced ones once their replacements serve), and publishes the
/// catalog (<see cref="CatalogProjection"/>) to every node.
/// </summary>
/// <remarks>
/// Longer than most files here because it wires twenty-five commands, persistence and four timers; the
/// decisions it acts on are made, and unit-tested, in the objects above.
/// </remarks>
public sealed class ModelRegistryActor : ReceivePersistentActor, IWithTimers
{
    public const string CatalogTopic = "serve.catalog";
    public const string RegistryPersistenceId = "serve-model-registry";
    private const string ReconcileTimer = "reconcile";
    private const string PublishTimer = "publish";
    private const string DebounceTimer = "debounce";
    private const string ReplanTimer = "replan";

    private readonly IActorRef _replicaRegion;
    private readonly RegistrySettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _mediator = DistributedPubSub.Get(Context.System).Mediator;
    private readonly string _incarnation = Guid.NewGuid().ToString("N");
    private readonly DesiredState _desired = new();
    private readonly ObservedState _observed;
    private readonly PlanBook _plans = new();

    // True while Replan waits (a worker settles): the plan is older than the desired state.
    private bool _replanPending;
    private long _revision;

    // Replicas replaced because their worker was unreachable, by worker: reinstated if it comes back first.
    private readonly Dictionary<string, List<ReplicaId>> _replacedOn = new(StringComparer.Ordinal);

    public ModelRegistryActor(IActorRef replicaRegion, RegistrySettings settings)
    {
        _replicaRegion = replicaRegion;
        _settings = settings;
        _observed = new ObservedState(settings);

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
        Command<ClusterEvent.UnreachableMember>(m => Unreachable(m.Member));
        Command<ClusterEvent.ReachableMember>(m => Reachable(m.Member));
        Command<ReplaceUnreachable>(m => ReplaceOnUnreachable(m.Address));
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
        // which also say which replicas they hold. Asked now, they answer within a round trip.
        foreach (var member in Cluster.Get(Context.System).State.Members)
        {
            WorkerArriving(member);
            if (member.HasRole(ServeRoles.Worker) && member.Status == MemberStatus.Up)
            {
                Context.ActorSelection(new RootActorPath(member.Address) / "user" / InventoryReporter.ActorName).Tell(ReportNow.Instance);
            }
        }

        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberRemoved), typeof(ClusterEvent.MemberJoined), typeof(ClusterEvent.MemberUp),
            typeof(ClusterEvent.UnreachableMember), typeof(ClusterEvent.ReachableMember));
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
        var pending = _desired.Copy();
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
        if (changed.Count == 0 || _observed.Nodes.Count == 0)
        {
            return null;
        }

        var trial = _desired.Copy();
        foreach (var change in events)
        {
            trial.Apply(change);
        }

        var placed = events.OfType<ModelVersionPlaced>().Select(p => p.Key).ToHashSet();
        return _plans.WhyNoRoom(trial, changed, placed, _observed.PlacementNodes);
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

    /// <summary>
    /// Plans placement again and acts on the difference: wakes newly placed replicas (on their planned
    /// device), stops replicas no longer planned, and retires replaced ones whose replacements serve.
    /// Waits while workers are still reporting (<see cref="ObservedState.PlacementMustWait"/>).
    /// </summary>
    private void Replan()
    {
        if (_observed.PlacementMustWait)
        {
            Timers.StartSingleTimer(ReplanTimer, ReplanTick.Instance, TimeSpan.FromMilliseconds(200));
            _replanPending = true;
            return;
        }

        var wasPending = _replanPending;
        _replanPending = false;
        var change = _plans.Replan(_desired, _observed.PlacementNodes);
        foreach (var why in change.NewlyUnplaced)
        {
            _log.Warning("Placement: {0}", why);
        }

        Stop(change.Stop);
        foreach (var wake in change.Wake)
        {
            _replicaRegion.Tell(wake);
        }

        RetireReplaced();
        if (change.Changed || wasPending)
        {
            Changed();
        }
    }

    /// <summary>Stops replicas the plan dropped; what they last reported is forgotten with them.</summary>
    private void Stop(IEnumerable<StopReplica> stops)
    {
        foreach (var stop in stops)
        {
            _replicaRegion.Tell(stop);
            _observed.Forget(stop.Replica);
        }
    }

    /// <summary>Replaced replicas stop once every active replica of their model version serves (after a grace period).</summary>
    private void RetireReplaced()
    {
        foreach (var replica in _plans.DueToRetire(_observed))
        {
            Timers.StartSingleTimer($"retire:{replica}", new RetireReplica(replica), _settings.RetireGrace);
        }
    }

    private void Retire(ReplicaId replica)
    {
        if (_plans.Retire(replica, _observed) is not { } stop)
        {
            return;
        }

        _log.Info("Placement: replica {0} retires; its replacement serves", replica);
        Stop([stop]);
        Replan();
        Changed();
    }

    private void WorkerArriving(Member member)
    {
        if (member.HasRole(ServeRoles.Worker) && member.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up)
        {
            _observed.WorkerArriving(member.Address.ToString());
        }
    }

    private void OnInventory(NodeInventory inventory)
    {
        var change = _observed.Report(inventory);
        if (change == InventoryChange.Ignored)
        {
            return;
        }

        var devicesChanged = change is InventoryChange.Arrived or InventoryChange.DevicesChanged;
        if (devicesChanged)
        {
            _log.Info("Worker {0} ({1}) has {2}", inventory.Name, inventory.Address,
                string.Join(", ", inventory.Devices.Select(d => $"{d.Name} ({d.TotalMemoryMb} MB)")));
        }

        var adopted = _plans.AdoptHosted(inventory, _desired);
        if (devicesChanged || adopted)
        {
            Replan();
            Changed();
        }
        else if (change == InventoryChange.UseChanged)
        {
            Changed();
        }
    }

    private void UpdateStatus(ReplicaStatus status)
    {
        if (_desired.Find(status.Replica.Key) is not { } definition)
        {
            StopUnwanted(status);
            return;
        }

        var assignment = _plans.AssignmentOf(status.Replica);
        if (assignment is null)
        {
            // A replica this registry did not place: one that runs from before this registry took over is
            // adopted while its model version needs replicas; otherwise (scaled down or replaced while its
            // node was away) it stops.
            if (status.State == ReplicaState.Stopped || _plans.ActiveCount(status.Replica.Key) >= definition.Replicas)
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

        if (_observed.Record(status))
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
        _plans.Adopt(status.Replica, status.NodeAddress, status.Device);
        _observed.Record(status);
        Replan();
    }

    private void Unreachable(Member member)
    {
        var address = member.Address.ToString();
        if (member.HasRole(ServeRoles.Worker) && _observed.SetUnreachable(address, unreachable: true))
        {
            _log.Warning("Worker {0} is unreachable; its replicas are replaced elsewhere if it stays so for {1}", address, _settings.ReplaceUnreachableAfter);
            Timers.StartSingleTimer($"unreachable:{address}", new ReplaceUnreachable(address), _settings.ReplaceUnreachableAfter);
        }
    }

    private void Reachable(Member member)
    {
        var address = member.Address.ToString();
        if (!_observed.SetUnreachable(address, unreachable: false))
        {
            return;
        }

        Timers.Cancel($"unreachable:{address}");
        if (_replacedOn.Remove(address, out var replaced))
        {
            _log.Info("Worker {0} is reachable again; its {1} replaced replica(s) retire once their replacements serve", address, replaced.Count);
            _plans.Reinstate(address, replaced, _desired);
        }

        Replan();
        Changed();
    }

    private void ReplaceOnUnreachable(string address)
    {
        if (!_observed.IsUnreachable(address))
        {
            return;
        }

        var replaced = _plans.ReplaceOn(address);
        if (replaced.Count > 0)
        {
            _replacedOn[address] = [.. _replacedOn.GetValueOrDefault(address) ?? [], .. replaced];
            _log.Warning("Worker {0} still unreachable: replacing {1} on the reachable workers", address, string.Join(", ", replaced));
            Replan();
            Changed();
        }
    }

    private void ForgetNode(string address)
    {
        _replacedOn.Remove(address);
        var known = _observed.ForgetNode(address);
        var placed = _plans.ForgetNode(address);
        if (known || placed > 0)
        {
            _log.Info("Node {0} left; its {1} replica(s) will be placed again", address, placed);
            Replan();
            Changed();
            Reconcile();
        }
    }

    private void Reconcile()
    {
        foreach (var wake in _plans.WakeAll(_desired))
        {
            _replicaRegion.Tell(wake);
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

    private CatalogSnapshot Snapshot() => CatalogProjection.Project(_incarnation, _revision, _desired, _plans, _observed, _replanPending);

    private sealed record RetireReplica(ReplicaId Replica);

    private sealed record ReplaceUnreachable(string Address);

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
