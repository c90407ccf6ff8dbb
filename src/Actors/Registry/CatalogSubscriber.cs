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
    private ImmutableHashSet<string> _unavailable = ImmutableHashSet<string>.Empty;

    public CatalogSubscriber(CatalogView view, IActorRef registry)
    {
        _view = view;
        _registry = registry;

        Receive<CatalogSnapshot>(OnSnapshot);
        Receive<SubscribeAck>(_ => { });
        // A node stops being available when it is unreachable or on its way out, and is available again
        // when it becomes reachable or (restarted at the same address) joins anew.
        Receive<ClusterEvent.UnreachableMember>(m => SetAvailability(m.Member.Address, available: false));
        Receive<ClusterEvent.ReachableMember>(m => SetAvailability(m.Member.Address, available: true));
        Receive<ClusterEvent.MemberLeft>(m => SetAvailability(m.Member.Address, available: false));
        Receive<ClusterEvent.MemberExited>(m => SetAvailability(m.Member.Address, available: false));
        Receive<ClusterEvent.MemberDowned>(m => SetAvailability(m.Member.Address, available: false));
        Receive<ClusterEvent.MemberRemoved>(m => SetAvailability(m.Member.Address, available: false));
        Receive<ClusterEvent.MemberJoined>(m => SetAvailability(m.Member.Address, available: true));
        Receive<ClusterEvent.MemberUp>(m => SetAvailability(m.Member.Address, available: true));
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
        Receive<Poll>(_ => _registry.Tell(GetCatalog.Instance));
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
        if (!newer)
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

    private void SetAvailability(Address address, bool available)
    {
        var key = address.ToString();
        var updated = available ? _unavailable.Remove(key) : _unavailable.Add(key);
        if (updated != _unavailable)
        {
            _unavailable = updated;
            Publish();
        }
    }

    private void Publish() =>
        _view.Set(new CatalogState(_snapshot ?? CatalogSnapshot.Empty, _snapshot is not null, _unavailable));

    private sealed record Poll
    {
        public static Poll Instance { get; } = new();
    }
}
