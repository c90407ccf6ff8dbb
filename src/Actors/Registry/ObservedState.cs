using Serve.Actors.Placement;
using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

/// <summary>What a worker's inventory report changes.</summary>
public enum InventoryChange
{
    /// <summary>Its node left the cluster; a late report must not bring it back.</summary>
    Ignored,

    /// <summary>The first report of this worker.</summary>
    Arrived,

    /// <summary>Its devices changed (name, count or size).</summary>
    DevicesChanged,

    /// <summary>Only the measured use or the hosted replicas changed.</summary>
    UseChanged,

    Unchanged,
}

/// <summary>
/// What the registry sees of the cluster, kept in memory only (it is reported again after a restart): each
/// replica's last status, each worker's devices, and which workers are up, left, or just arrived. It
/// decides when placement may run: not while a worker that is up has not reported its devices (for up to
/// <see cref="InventoryWait"/>), and not within <see cref="RegistrySettings.NewWorkerSettle"/> of a new
/// worker's first report, so workers starting together are planned together.
/// </summary>
public sealed class ObservedState(RegistrySettings settings)
{
    /// <summary>How long placement waits for a worker that is up to report its devices.</summary>
    public static readonly TimeSpan InventoryWait = TimeSpan.FromSeconds(10);

    private readonly Dictionary<ReplicaId, ReplicaStatus> _statuses = [];
    private readonly Dictionary<string, NodeInventory> _nodes = new(StringComparer.Ordinal);

    // Worker members that are joining or up, and since when.
    private readonly Dictionary<string, DateTimeOffset> _workersUp = new(StringComparer.Ordinal);

    // Nodes that left the cluster (until one joins again at the same address).
    private readonly HashSet<string> _removed = new(StringComparer.Ordinal);
    private DateTimeOffset _settledAfter = DateTimeOffset.MinValue;

    // Nodes the failure detector cannot reach now (they may come back, or be downed).
    private readonly HashSet<string> _unreachable = new(StringComparer.Ordinal);

    public IReadOnlyCollection<NodeInventory> Nodes => _nodes.Values;

    /// <summary>The nodes new replicas may go to: those reported and reachable.</summary>
    public IReadOnlyCollection<NodeInventory> PlacementNodes => [.. _nodes.Values.Where(n => !_unreachable.Contains(n.Address))];

    public bool IsUnreachable(string address) => _unreachable.Contains(address);

    /// <summary>The failure detector lost (true) or regained (false) a node; true when that changed anything.</summary>
    public bool SetUnreachable(string address, bool unreachable) =>
        unreachable ? _unreachable.Add(address) : _unreachable.Remove(address);

    public ReplicaStatus? StatusOf(ReplicaId replica) => _statuses.GetValueOrDefault(replica);

    /// <summary>True when <paramref name="replica"/> is Ready where <paramref name="assignment"/> placed it.</summary>
    public bool IsServing(ReplicaId replica, ReplicaAssignment assignment) =>
        _statuses.GetValueOrDefault(replica) is { State: ReplicaState.Ready } status && status.NodeAddress == assignment.NodeAddress;

    /// <summary>True while placement should wait for workers to report (see the class summary).</summary>
    public bool PlacementMustWait
    {
        get
        {
            var now = settings.Time.GetUtcNow();
            return now < _settledAfter || _workersUp.Any(w => !_nodes.ContainsKey(w.Key) && now - w.Value < InventoryWait);
        }
    }

    /// <summary>A worker member is joining or up (again, if it had left).</summary>
    public void WorkerArriving(string address)
    {
        _workersUp.TryAdd(address, settings.Time.GetUtcNow());
        _removed.Remove(address);
    }

    public InventoryChange Report(NodeInventory inventory)
    {
        if (_removed.Contains(inventory.Address))
        {
            return InventoryChange.Ignored;
        }

        var previous = _nodes.GetValueOrDefault(inventory.Address);
        _nodes[inventory.Address] = inventory;
        if (previous is null)
        {
            _settledAfter = settings.Time.GetUtcNow() + settings.NewWorkerSettle;
            return InventoryChange.Arrived;
        }

        return !previous.SameDevices(inventory) ? InventoryChange.DevicesChanged
            : !previous.Devices.SequenceEqual(inventory.Devices) ? InventoryChange.UseChanged
            : InventoryChange.Unchanged;
    }

    /// <summary>
    /// Keeps <paramref name="status"/>; true when it differs from the one before in anything a reader of the
    /// catalog would see. A Stopped report from a node the replica has left is stale and ignored.
    /// </summary>
    public bool Record(ReplicaStatus status)
    {
        var previous = _statuses.GetValueOrDefault(status.Replica);
        if (status.State == ReplicaState.Stopped && previous is not null && previous.NodeAddress != status.NodeAddress)
        {
            return false;
        }

        _statuses[status.Replica] = status;
        return previous is null || MeaningfullyDifferent(previous, status);
    }

    public void Forget(ReplicaId replica) => _statuses.Remove(replica);

    /// <summary>A node left: forgets its replicas and devices; true when anything was known of it.</summary>
    public bool ForgetNode(string address)
    {
        var gone = _statuses.Where(s => s.Value.NodeAddress == address).Select(s => s.Key).ToList();
        foreach (var replica in gone)
        {
            _statuses.Remove(replica);
        }

        var hadDevices = _nodes.Remove(address);
        _workersUp.Remove(address);
        _unreachable.Remove(address);
        _removed.Add(address);
        return gone.Count > 0 || hadDevices;
    }

    private static bool MeaningfullyDifferent(ReplicaStatus a, ReplicaStatus b) =>
        a.State != b.State || a.NodeAddress != b.NodeAddress || a.Device != b.Device
        || a.Restarts != b.Restarts || a.LastError != b.LastError || a.Signature != b.Signature;
}
