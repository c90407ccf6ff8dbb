using System.Globalization;
using Serve.Actors.Protocol;

namespace Serve.Actors.Placement;

/// <summary>
/// Where one model version's replicas go, or why some cannot go anywhere; <paramref name="Shortfall"/> is
/// how many wanted replicas have no place.
/// </summary>
public sealed record ModelPlan(ReplicaAssignment[] Assignments, string? Unplaced, int Shortfall = 0)
{
    public IEnumerable<ReplicaAssignment> Active => Assignments.Where(a => !a.Retiring);
}

/// <summary>
/// Plans every replica's node and device, as a pure function of the desired models, the workers' devices
/// and the current assignments:
/// <list type="number">
/// <item>A replica stays where it is while its placement allows it and its declared memory fits there
/// (no churn), and so does one on a node that has not reported its devices yet. Retiring and misplaced
/// replicas keep their memory until they stop.</item>
/// <item>Missing replicas go, largest declared memory first, to an allowed device with room: first to
/// the allowed node with the fewest replicas of the same model (spread), then to the device it fills the
/// most (best fit, so large models still find room later), then to the emptiest device.</item>
/// <item>A replica its placement no longer allows (pins changed, node full) gets a replacement under a new
/// index and retires once the replacement serves: make before break. With nothing else moving, one
/// replica of an unevenly spread model moves at a time the same way.</item>
/// </list>
/// A device's declared memory is never over-committed; what cannot be placed is named with the reason.
/// </summary>
public static class PlacementPlanner
{
    /// <param name="nextIndex">The lowest index a new replica of a model version may take (indices given up
    /// recently may still have their shard on another node); none: one past the highest in the plan.</param>
    public static Dictionary<ModelKey, ModelPlan> Plan(
        IReadOnlyList<ModelDefinition> models,
        IReadOnlyList<NodeInventory> nodes,
        IReadOnlyDictionary<ModelKey, ReplicaAssignment[]> current,
        IReadOnlyDictionary<ModelKey, int>? nextIndex = null)
    {
        var ledger = new Ledger(nodes);
        var plans = new Dictionary<ModelKey, Working>();
        var ordered = models.OrderBy(m => m.Key.ToString(), StringComparer.Ordinal).ToList();

        // Retiring replicas hold their memory until they stop; on a node that is gone they hold nothing.
        foreach (var model in ordered)
        {
            var working = plans[model.Key] = new Working(model, current.GetValueOrDefault(model.Key) ?? [],
                nextIndex?.GetValueOrDefault(model.Key) ?? 0);
            foreach (var retiring in working.Current.Where(a => a.Retiring))
            {
                ledger.Reserve(retiring, model.DeviceMemoryMb);
                working.Retiring.Add(retiring);
            }
        }

        // Keep every replica that may stay where it is, up to the replica count (scaling down drops the
        // highest indices). A misplaced replica holds its device until it retires.
        foreach (var working in plans.Values)
        {
            foreach (var assignment in working.Current.Where(a => !a.Retiring).OrderBy(a => a.Index))
            {
                if (working.Kept.Count + working.Misplaced.Count >= working.Model.Replicas)
                {
                    break;
                }

                if (ledger.Node(assignment.NodeAddress) is null)
                {
                    // A node that has not reported its devices yet (the registry forgets the replicas of
                    // nodes that leave): nothing to judge by, so the replica stays.
                    working.Kept.Add(assignment);
                    continue;
                }

                var stays = MayStay(working, assignment, ledger);
                ledger.Reserve(assignment, working.Model.DeviceMemoryMb);
                (stays ? working.Kept : working.Misplaced).Add(assignment);
            }
        }

        // Place what is missing, largest declared memory first.
        foreach (var working in plans.Values.OrderByDescending(w => w.Model.DeviceMemoryMb).ThenBy(w => w.Model.Key.ToString(), StringComparer.Ordinal))
        {
            PlaceMissing(working, ledger);
        }

        if (plans.Values.All(w => w.Retiring.Count == 0 && w.Misplaced.Count == 0))
        {
            MoveOneToSpread(plans.Values, ledger);
        }

        return plans.ToDictionary(p => p.Key, p => p.Value.ToPlan());
    }

    private static bool MayStay(Working working, ReplicaAssignment assignment, Ledger ledger)
    {
        var placement = working.Model.Placement;
        return ledger.Node(assignment.NodeAddress) is { } node
               && node.Devices.Any(d => d.Name == assignment.Device)
               && placement.AllowsNode(node)
               && placement.AllowsDevice(assignment.Device)
               && !(placement.Spread && working.Kept.Any(k => k.NodeAddress == assignment.NodeAddress))
               && ledger.Fits(assignment.NodeAddress, assignment.Device, working.Model.DeviceMemoryMb);
    }

    private static void PlaceMissing(Working working, Ledger ledger)
    {
        var model = working.Model;
        var missing = model.Replicas - working.Kept.Count - working.Misplaced.Count;
        for (var i = 0; i < missing; i++)
        {
            if (Choose(working, ledger, exceptNode: null) is not { } target)
            {
                working.Unplaced = WhyNothingFits(working, ledger, missing - i);
                return;
            }

            Add(working, ledger, target);
        }

        // Misplaced replicas keep serving where they are until a replacement is placed; one move per
        // model version at a time.
        foreach (var misplaced in working.Misplaced.ToList())
        {
            if (working.Retiring.Count > 0)
            {
                Keep(working, misplaced);
                continue;
            }

            if (Choose(working, ledger, exceptNode: null) is not { } target)
            {
                working.Unplaced = $"replica {misplaced.Index} runs on {misplaced.NodeAddress} {misplaced.Device}, which its placement no longer " +
                                   $"allows or has no room for; it stays there until it can move: {WhyNothingFits(working, ledger, 1)}";
                Keep(working, misplaced);
                continue;
            }

            Add(working, ledger, target);
            working.Misplaced.Remove(misplaced);
            working.Retiring.Add(misplaced with { Retiring = true });
        }
    }

    /// <summary>With nothing else moving, moves one replica of a model whose replicas are spread unevenly (by 2 or more).</summary>
    private static void MoveOneToSpread(IEnumerable<Working> plans, Ledger ledger)
    {
        foreach (var working in plans.Where(w => w.Model.Placement.Nodes.Length == 0))
        {
            var active = working.Kept.Concat(working.Added).ToList();
            var eligible = ledger.Nodes.Where(n => working.Model.Placement.AllowsNode(n)).ToList();
            if (eligible.Count < 2 || active.Count < 2)
            {
                continue;
            }

            var counts = eligible.Select(n => (Node: n, Count: active.Count(a => a.NodeAddress == n.Address))).ToList();
            var most = counts.MaxBy(c => c.Count);
            var least = counts.MinBy(c => c.Count);
            if (most.Count - least.Count < 2)
            {
                continue;
            }

            if (Choose(working, ledger, exceptNode: most.Node.Address) is not { } target || target.Node != least.Node.Address)
            {
                continue;
            }

            if (working.Kept.Where(a => a.NodeAddress == most.Node.Address).MaxBy(a => a.Index) is not { } moving)
            {
                continue;
            }

            Add(working, ledger, target);
            working.Kept.Remove(moving);
            working.Retiring.Add(moving with { Retiring = true });
            return;
        }
    }

    private static void Keep(Working working, ReplicaAssignment misplaced)
    {
        working.Kept.Add(misplaced);
        working.Misplaced.Remove(misplaced);
    }

    private static void Add(Working working, Ledger ledger, (string Node, string Device) target)
    {
        var assignment = new ReplicaAssignment(working.NextIndex(), target.Node, target.Device, Retiring: false);
        ledger.Reserve(assignment, working.Model.DeviceMemoryMb);
        working.Added.Add(assignment);
    }

    private static (string Node, string Device)? Choose(Working working, Ledger ledger, string? exceptNode)
    {
        var model = working.Model;
        var placement = model.Placement;
        var active = working.Kept.Concat(working.Added).Concat(working.Misplaced).ToList();
        var candidates =
            from node in ledger.Nodes
            where node.Address != exceptNode && placement.AllowsNode(node)
            let sameModel = active.Count(a => a.NodeAddress == node.Address)
            where !(placement.Spread && sameModel > 0)
            from device in node.Devices
            where placement.AllowsDevice(device.Name) && ledger.Fits(node.Address, device.Name, model.DeviceMemoryMb)
            select (Node: node.Address, Device: device.Name, SameModel: sameModel,
                FreeAfter: ledger.Free(node.Address, device.Name) - model.DeviceMemoryMb,
                OnDevice: ledger.Replicas(node.Address, device.Name), OnNode: ledger.ReplicasOn(node.Address));
        var best = candidates
            .OrderBy(c => c.SameModel)
            .ThenBy(c => model.DeviceMemoryMb > 0 ? c.FreeAfter : 0)
            .ThenBy(c => c.OnDevice)
            .ThenBy(c => c.OnNode)
            .ThenBy(c => c.Node, StringComparer.Ordinal)
            .ThenBy(c => c.Device, StringComparer.Ordinal)
            .Select(c => ((string Node, string Device)?)(c.Node, c.Device))
            .FirstOrDefault();
        return best;
    }

    private static string WhyNothingFits(Working working, Ledger ledger, int unplaced)
    {
        var model = working.Model;
        var placement = model.Placement;
        var count = unplaced == 1 ? "1 replica" : $"{unplaced} replicas";
        var prefix = $"{count} of model {model.Name} version {model.Version} cannot be placed: ";
        if (ledger.Nodes.Count == 0)
        {
            return prefix + "no worker node has joined the cluster";
        }

        var nodes = ledger.Nodes.Where(placement.AllowsNode).ToList();
        if (nodes.Count == 0)
        {
            return prefix + $"no worker node is named {string.Join(" or ", placement.Nodes)} (workers: {string.Join(", ", ledger.Nodes.Select(n => n.Name))})";
        }

        var devices = nodes.SelectMany(n => n.Devices.Where(d => placement.AllowsDevice(d.Name)).Select(d => (Node: n, Device: d))).ToList();
        if (devices.Count == 0)
        {
            return prefix + $"no allowed worker has device {string.Join(" or ", placement.Devices)}";
        }

        if (placement.Spread && nodes.Count < model.Replicas)
        {
            return prefix + $"spread allows one replica per node, and {nodes.Count} allowed node(s) cannot hold {model.Replicas} replicas";
        }

        var roomiest = devices.MaxBy(d => ledger.Free(d.Node.Address, d.Device.Name));
        return prefix + string.Create(CultureInfo.InvariantCulture,
            $"each replica declares {model.DeviceMemoryMb} MB of device memory, and the most free on an allowed device is " +
            $"{Math.Max(0, ledger.Free(roomiest.Node.Address, roomiest.Device.Name))} MB ({roomiest.Device.Name} on {roomiest.Node.Name})");
    }

    /// <summary>One model version while its plan is made.</summary>
    private sealed class Working(ModelDefinition model, ReplicaAssignment[] current, int indexFloor)
    {
        public ModelDefinition Model { get; } = model;

        public ReplicaAssignment[] Current { get; } = current;

        public List<ReplicaAssignment> Kept { get; } = [];

        public List<ReplicaAssignment> Added { get; } = [];

        public List<ReplicaAssignment> Misplaced { get; } = [];

        public List<ReplicaAssignment> Retiring { get; } = [];

        public string? Unplaced { get; set; }

        /// <summary>
        /// One past the highest index in use: a replacement never takes the index (the shard) of a replica
        /// that just retired, whose shard sharding may still keep on the node it left.
        /// </summary>
        public int NextIndex() => Math.Max(indexFloor,
            Current.Concat(Kept).Concat(Added).Concat(Misplaced).Concat(Retiring).Select(a => a.Index).DefaultIfEmpty(-1).Max() + 1);

        public ModelPlan ToPlan() => new(
            [.. Kept.Concat(Added).Concat(Misplaced).Concat(Retiring).OrderBy(a => a.Index)],
            Unplaced,
            Math.Max(0, Model.Replicas - Kept.Count - Added.Count - Misplaced.Count));
    }

    /// <summary>Declared memory and replica counts per device, against each device's total.</summary>
    private sealed class Ledger(IReadOnlyList<NodeInventory> nodes)
    {
        private readonly Dictionary<(string Node, string Device), (long Used, int Replicas)> _use = [];

        public IReadOnlyList<NodeInventory> Nodes { get; } = [.. nodes.OrderBy(n => n.Address, StringComparer.Ordinal)];

        public NodeInventory? Node(string address) => Nodes.FirstOrDefault(n => n.Address == address);

        public long Free(string node, string device)
        {
            var total = Node(node)?.Devices.FirstOrDefault(d => d.Name == device)?.TotalMemoryMb ?? 0;
            return total < 0 ? long.MaxValue / 2 : total - _use.GetValueOrDefault((node, device)).Used;
        }

        public bool Fits(string node, string device, int memoryMb) => memoryMb == 0 || Free(node, device) >= memoryMb;

        public int Replicas(string node, string device) => _use.GetValueOrDefault((node, device)).Replicas;

        public int ReplicasOn(string node) => _use.Where(u => u.Key.Node == node).Sum(u => u.Value.Replicas);

        public void Reserve(ReplicaAssignment assignment, int memoryMb)
        {
            var key = (assignment.NodeAddress, assignment.Device);
            var (used, replicas) = _use.GetValueOrDefault(key);
            _use[key] = (used + memoryMb, replicas + 1);
        }
    }
}
