using Akka.Actor;
using Akka.Cluster;
using Serve.Actors.Models;
using Serve.Actors.Protocol;

namespace Serve.Actors.Placement;

/// <summary>
/// On each worker: tells the registry this node's name, devices and the replicas it holds once the node is
/// up and every few seconds after (a registry that takes over learns them within one interval and adopts
/// the running replicas; the in-use figures stay fresh), and at once when a registry that starts asks
/// (<see cref="ReportNow"/>).
/// </summary>
public sealed class InventoryReporter : ReceiveActor, IWithTimers
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    /// <summary>Its name under /user on every worker: a registry that starts asks it by path.</summary>
    public const string ActorName = "inventory-reporter";

    private readonly Func<IActorRef?> _registry;
    private readonly Func<DeviceCapacity[]> _devices;
    private readonly Func<HostedReplica[]> _hosted;
    private readonly string? _name;
    private readonly LocalReplicas _replicas;

    /// <param name="registry">The registry proxy, once this node has one (the standalone server registers
    /// it after the worker's actors start).</param>
    public InventoryReporter(Func<IActorRef?> registry, Func<DeviceCapacity[]> devices, Func<HostedReplica[]> hosted, string? name, LocalReplicas replicas)
    {
        _replicas = replicas;
        _registry = registry;
        _devices = devices;
        _hosted = hosted;
        _name = name;
        Receive<Report>(_ =>
        {
            if (_registry() is not { } registry)
            {
                Timers.StartSingleTimer("first", Report.Instance, TimeSpan.FromMilliseconds(50));
                return;
            }

            registry.Tell(Inventory());
            if (!Timers.IsTimerActive("report"))
            {
                Timers.StartPeriodicTimer("report", Report.Instance, Interval);
            }
        });
        Receive<ReportNow>(ask =>
        {
            Sender.Tell(Inventory());
            foreach (var replica in _replicas.All)
            {
                replica.Tell(ask, Sender);
            }
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(
        Func<IActorRef?> registry, Func<DeviceCapacity[]> devices, Func<HostedReplica[]> hosted, string? name, LocalReplicas replicas) =>
        Akka.Actor.Props.Create(() => new InventoryReporter(registry, devices, hosted, name, replicas));

    /// <summary>
    /// Reports begin once this node is up: workers that join together become up together, so the registry
    /// hears of all of them (and waits for their devices) before it places replicas on the first.
    /// </summary>
    protected override void PreStart()
    {
        var self = Self;
        Cluster.Get(Context.System).RegisterOnMemberUp(() => self.Tell(Report.Instance));
    }

    private NodeInventory Inventory()
    {
        var address = Cluster.Get(Context.System).SelfAddress;
        var name = string.IsNullOrWhiteSpace(_name) ? $"{address.Host}:{address.Port}" : _name;
        return new NodeInventory(address.ToString(), name, _devices()) { Hosted = _hosted() };
    }

    private sealed record Report
    {
        public static Report Instance { get; } = new();
    }
}
