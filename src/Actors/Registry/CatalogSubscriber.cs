using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.PublishSubscribe;
using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

/// <summary>
/// Keeps this node's <see cref="CatalogView"/> current: subscribes to the registry's catalog topic, polls
/// the registry until the first catalog arrives (and slowly afterwards, in case a publication was lost),
/// and tracks which cluster members are unreachable or gone so the router avoids them at once.
/// </summary>
public sealed class CatalogSubscriber : ReceiveActor, IWithTimers
{
    private const string PollTimer = "poll";
    private static readonly TimeSpan FastPoll = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan SlowPoll = TimeSpan.FromSeconds(10);

    private readonly CatalogView _view;
    private readonly IActorRef _registry;
    private CatalogSnapshot? _snapshot;
    private ImmutableHashSet<string> _unreachable = ImmutableHashSet<string>.Empty;
    private ImmutableHashSet<string> _departed = ImmutableHashSet<string>.Empty;

    public CatalogSubscriber(CatalogView view, IActorRef registry)
    {
        _view = view;
        _registry = registry;

        Receive<CatalogSnapshot>(OnSnapshot);
        Receive<SubscribeAck>(_ => { });
        // A node cannot serve while it is unreachable, and from the moment it starts to leave (or is
        // downed) until it joins again (restarted at the same address).
        Receive<ClusterEvent.UnreachableMember>(m => Update(ref _unreachable, m.Member.Address, add: true));
        Receive<ClusterEvent.ReachableMember>(m => Update(ref _unreachable, m.Member.Address, add: false));
        Receive<ClusterEvent.MemberLeft>(m => Update(ref _departed, m.Member.Address, add: true));
        Receive<ClusterEvent.MemberExited>(m => Update(ref _departed, m.Member.Address, add: true));
        Receive<ClusterEvent.MemberDowned>(m => Update(ref _departed, m.Member.Address, add: true));
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            Update(ref _unreachable, m.Member.Address, add: false);
            Update(ref _departed, m.Member.Address, add: true);
        });
        Receive<ClusterEvent.MemberJoined>(m => Update(ref _departed, m.Member.Address, add: false));
        Receive<ClusterEvent.MemberUp>(m => Update(ref _departed, m.Member.Address, add: false));
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
        Receive<Poll>(_ => _registry.Tell(GetCatalog.Instance));
        Receive<Refresh>(_ =>
        {
            var replyTo = Sender;
            _registry.Ask<CatalogSnapshot>(GetCatalog.Instance, TimeSpan.FromSeconds(10))
                .PipeTo(Self, success: snapshot => new Refreshed(snapshot, replyTo), failure: _ => new Refreshed(null, replyTo));
        });
        Receive<Refreshed>(m =>
        {
            if (m.Snapshot is not null)
            {
                OnSnapshot(m.Snapshot);
            }

            m.ReplyTo.Tell(Refresh.Done);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(CatalogView view, IActorRef registry) =>
        Akka.Actor.Props.Create(() => new CatalogSubscriber(view, registry));

    protected override void PreStart()
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(ModelRegistryActor.CatalogTopic, Self));
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IReachabilityEvent), typeof(ClusterEvent.IMemberEvent));
        Timers.StartPeriodicTimer(PollTimer, Poll.Instance, TimeSpan.Zero, FastPoll);
    }

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);

    private void OnSnapshot(CatalogSnapshot snapshot)
    {
        var newer = _snapshot is null
                    || snapshot.RegistryIncarnation != _snapshot.RegistryIncarnation
                    || snapshot.Revision > _snapshot.Revision;
        // A registry that took over publishes before it has planned; the previous registry's catalog still
        // says where the running replicas are, so it stays until the new one has a plan.
        var unplannedSuccessor = _snapshot is { Planned: true } && !snapshot.Planned
                                 && snapshot.RegistryIncarnation != _snapshot.RegistryIncarnation;
        if (!newer || unplannedSuccessor)
        {
            return;
        }

        if (_snapshot is null)
        {
            Timers.StartPeriodicTimer(PollTimer, Poll.Instance, SlowPoll);
        }

        _snapshot = snapshot;
        Publish();
    }

    private void Update(ref ImmutableHashSet<string> set, Address address, bool add)
    {
        var key = address.ToString();
        var updated = add ? set.Add(key) : set.Remove(key);
        if (updated != set)
        {
            set = updated;
            Publish();
        }
    }

    private void Publish()
    {
        // A departed node matters only while replicas are still reported on it; forget it once the
        // registry has placed them elsewhere, so the set does not grow with every node that ever left.
        var snapshot = _snapshot ?? CatalogSnapshot.Empty;
        var named = snapshot.Entries.SelectMany(e => e.Replicas).Select(r => r.NodeAddress).ToHashSet(StringComparer.Ordinal);
        _departed = _departed.Intersect(named);
        _view.Set(new CatalogState(snapshot, _snapshot is not null, _unreachable.Union(_departed)));
    }

    private sealed record Poll
    {
        public static Poll Instance { get; } = new();
    }

    private sealed record Refreshed(CatalogSnapshot? Snapshot, IActorRef ReplyTo);

    /// <summary>
    /// Fetch the catalog now and answer <see cref="Done"/> once this node's view has it: a management call
    /// then sees its own change in the next read on this gateway.
    /// </summary>
    public sealed record Refresh
    {
        public static Refresh Instance { get; } = new();

        public static object Done { get; } = new RefreshDone();

        private sealed record RefreshDone;
    }
}
