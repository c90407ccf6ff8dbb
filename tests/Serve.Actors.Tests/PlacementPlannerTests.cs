using Serve.Actors.Placement;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tests;

/// <summary>The placement planner as a pure function: spread, bin-packing by declared memory, pins, moves.</summary>
public sealed class PlacementPlannerTests
{
    private const string A = "akka.tcp://serve@10.0.0.1:4054";
    private const string B = "akka.tcp://serve@10.0.0.2:4054";

    private static NodeInventory Node(string address, string name, params (string Name, long Mb)[] devices) =>
        new(address, name, [.. devices.Select(d => new DeviceCapacity(d.Name, d.Mb, -1))]);

    private static readonly NodeInventory[] TwoGpuNodes =
    [
        Node(A, "gpu-a", ("cuda:0", 16_000), ("cuda:1", 16_000)),
        Node(B, "gpu-b", ("cuda:0", 16_000), ("cuda:1", 16_000)),
    ];

    private static ModelDefinition Model(string name, int replicas, int memoryMb = 0, ModelPlacement? placement = null) =>
        new ModelDefinition(name, "1.0", new TorchScriptSource($"{name}.pt"), BuiltInHandlers.Tensor, replicas, 1, 0, 100, 120, null)
        {
            DeviceMemoryMb = memoryMb,
            Placement = placement ?? ModelPlacement.Anywhere,
        };

    private static Dictionary<ModelKey, ModelPlan> Plan(
        IReadOnlyList<NodeInventory> nodes, params ModelDefinition[] models) =>
        PlacementPlanner.Plan(models, nodes, new Dictionary<ModelKey, ReplicaAssignment[]>());

    private static Dictionary<(string Node, string Device), long> DeclaredPerDevice(
        Dictionary<ModelKey, ModelPlan> plans, params ModelDefinition[] models) =>
        plans.SelectMany(p => p.Value.Assignments.Select(a => (a, models.First(m => m.Key == p.Key).DeviceMemoryMb)))
            .GroupBy(x => (x.a.NodeAddress, x.a.Device))
            .ToDictionary(g => g.Key, g => g.Sum(x => (long)x.DeviceMemoryMb));

    [Fact]
    public void Replicas_of_one_model_spread_over_nodes_first()
    {
        var plan = Plan(TwoGpuNodes, Model("m", 4))[new ModelKey("m", "1.0")];
        Assert.Null(plan.Unplaced);
        Assert.Equal([0, 1, 2, 3], plan.Assignments.Select(a => a.Index));
        Assert.Equal(2, plan.Assignments.Count(a => a.NodeAddress == A));
        Assert.Equal(4, plan.Assignments.Select(a => (a.NodeAddress, a.Device)).Distinct().Count());
    }

    [Fact]
    public void Declared_memory_is_bin_packed_and_never_over_committed()
    {
        var big = Model("big", 2, memoryMb: 12_000);
        var small = Model("small", 6, memoryMb: 4_000);
        var plans = Plan(TwoGpuNodes, big, small);
        Assert.All(plans.Values, p => Assert.Null(p.Unplaced));
        Assert.All(DeclaredPerDevice(plans, big, small).Values, used => Assert.True(used <= 16_000, $"{used} MB on a 16000 MB device"));

        // Best fit: the small replicas fill the big ones' devices before using up the empty devices.
        var bigDevices = plans[big.Key].Assignments.Select(a => (a.NodeAddress, a.Device)).ToHashSet();
        Assert.Equal(2, plans[small.Key].Assignments.Count(a => bigDevices.Contains((a.NodeAddress, a.Device))));
    }

    [Fact]
    public void When_nothing_fits_the_plan_says_why()
    {
        var plans = Plan(TwoGpuNodes, Model("huge", 1, memoryMb: 20_000));
        Assert.Empty(plans[new ModelKey("huge", "1.0")].Assignments);
        Assert.Equal("1 replica of model huge version 1.0 cannot be placed: each replica declares 20000 MB of device memory, " +
                     "and the most free on an allowed device is 16000 MB (cuda:0 on gpu-a)", plans[new ModelKey("huge", "1.0")].Unplaced);

        var full = Plan(TwoGpuNodes, Model("m", 5, memoryMb: 16_000))[new ModelKey("m", "1.0")];
        Assert.Equal(4, full.Assignments.Length);
        Assert.StartsWith("1 replica of model m version 1.0 cannot be placed: each replica declares 16000 MB", full.Unplaced, StringComparison.Ordinal);

        Assert.EndsWith("no worker node has joined the cluster", Plan([], Model("m", 1))[new ModelKey("m", "1.0")].Unplaced, StringComparison.Ordinal);
    }

    [Fact]
    public void Pins_to_nodes_and_devices_are_obeyed_and_named_when_impossible()
    {
        var pinned = Model("p", 3, placement: new ModelPlacement(["gpu-b"], ["cuda:1"], Spread: false));
        var plan = Plan(TwoGpuNodes, pinned)[pinned.Key];
        Assert.Null(plan.Unplaced);
        Assert.All(plan.Assignments, a => Assert.Equal((B, "cuda:1"), (a.NodeAddress, a.Device)));

        var byHostPort = Model("h", 1, placement: new ModelPlacement(["10.0.0.1:4054"], [], Spread: false));
        Assert.Equal(A, Plan(TwoGpuNodes, byHostPort)[byHostPort.Key].Assignments.Single().NodeAddress);

        var nowhere = Model("n", 1, placement: new ModelPlacement(["gpu-z"], [], Spread: false));
        Assert.EndsWith("no worker node is named gpu-z (workers: gpu-a, gpu-b)", Plan(TwoGpuNodes, nowhere)[nowhere.Key].Unplaced, StringComparison.Ordinal);

        var spread = Model("s", 3, placement: new ModelPlacement([], [], Spread: true));
        var spreadPlan = Plan(TwoGpuNodes, spread)[spread.Key];
        Assert.Equal(2, spreadPlan.Assignments.Select(a => a.NodeAddress).Distinct().Count());
        Assert.Equal(2, spreadPlan.Assignments.Length);
        Assert.EndsWith("spread allows one replica per node, and 2 allowed node(s) cannot hold 3 replicas", spreadPlan.Unplaced, StringComparison.Ordinal);
    }

    [Fact]
    public void Replicas_stay_where_they_are_while_allowed()
    {
        var model = Model("m", 2);
        var current = new Dictionary<ModelKey, ReplicaAssignment[]>
        {
            [model.Key] = [new(0, B, "cuda:1", false), new(1, B, "cuda:0", false)],
        };
        var plan = PlacementPlanner.Plan([model], [TwoGpuNodes[1]], current)[model.Key];
        Assert.Equal(current[model.Key], plan.Assignments);
    }

    [Fact]
    public void A_pin_change_starts_a_replacement_before_the_old_replica_retires()
    {
        var before = Model("m", 1);
        var current = new Dictionary<ModelKey, ReplicaAssignment[]> { [before.Key] = [new(0, A, "cuda:0", false)] };
        var pinned = before with { Placement = new ModelPlacement(["gpu-b"], [], Spread: false) };

        var plan = PlacementPlanner.Plan([pinned], TwoGpuNodes, current)[pinned.Key];
        Assert.Equal([new ReplicaAssignment(0, A, "cuda:0", Retiring: true), new ReplicaAssignment(1, B, "cuda:0", Retiring: false)],
            plan.Assignments);

        // Planned again while the old one is still retiring: nothing changes.
        Assert.Equal(plan.Assignments,
            PlacementPlanner.Plan([pinned], TwoGpuNodes, new Dictionary<ModelKey, ReplicaAssignment[]> { [pinned.Key] = plan.Assignments })[pinned.Key].Assignments);
    }

    [Fact]
    public void A_replica_that_cannot_move_keeps_serving_where_it_is()
    {
        var model = Model("m", 1, placement: new ModelPlacement(["gpu-z"], [], Spread: false));
        var current = new Dictionary<ModelKey, ReplicaAssignment[]> { [model.Key] = [new(0, A, "cuda:0", false)] };
        var plan = PlacementPlanner.Plan([model], TwoGpuNodes, current)[model.Key];
        Assert.Equal([new ReplicaAssignment(0, A, "cuda:0", false)], plan.Assignments);
        Assert.Contains("stays there until it can move", plan.Unplaced, StringComparison.Ordinal);
    }

    [Fact]
    public void A_new_node_gets_replicas_one_move_at_a_time()
    {
        var model = Model("m", 4);
        var onA = new ReplicaAssignment[] { new(0, A, "cuda:0", false), new(1, A, "cuda:1", false), new(2, A, "cuda:0", false), new(3, A, "cuda:1", false) };
        var plan = PlacementPlanner.Plan([model], TwoGpuNodes, new Dictionary<ModelKey, ReplicaAssignment[]> { [model.Key] = onA })[model.Key];
        Assert.Single(plan.Assignments, a => a.Retiring);
        Assert.Equal(new ReplicaAssignment(4, B, "cuda:0", false), plan.Assignments.Single(a => a.NodeAddress == B));
        Assert.Equal(4, plan.Active.Count());
    }

    [Fact]
    public void Scaling_down_drops_the_highest_indices_and_a_node_without_devices_yet_keeps_its_replicas()
    {
        var model = Model("m", 1);
        var current = new Dictionary<ModelKey, ReplicaAssignment[]> { [model.Key] = [new(0, A, "cuda:0", false), new(1, B, "cuda:0", false)] };
        Assert.Equal([new ReplicaAssignment(0, A, "cuda:0", false)], PlacementPlanner.Plan([model], TwoGpuNodes, current)[model.Key].Assignments);

        // A has not reported its devices (a registry that just took over): its replica stays as it is.
        var unknownNode = PlacementPlanner.Plan([model with { Replicas = 2 }], [TwoGpuNodes[1]], current)[model.Key];
        Assert.Equal(current[model.Key], unknownNode.Assignments);
    }

    [Fact]
    public void A_replica_on_a_device_its_node_no_longer_has_is_replaced()
    {
        var model = Model("m", 1);
        var current = new Dictionary<ModelKey, ReplicaAssignment[]> { [model.Key] = [new(0, A, "cuda:7", false)] };
        var plan = PlacementPlanner.Plan([model], TwoGpuNodes, current)[model.Key];
        Assert.Equal([new ReplicaAssignment(0, A, "cuda:7", true), new ReplicaAssignment(1, B, "cuda:0", false)], plan.Assignments);
    }

    [Fact]
    public void Scaling_down_during_a_move_keeps_no_more_than_the_replica_count()
    {
        var model = Model("m", 1, placement: new ModelPlacement(["gpu-b"], [], Spread: false));
        var current = new Dictionary<ModelKey, ReplicaAssignment[]>
        {
            [model.Key] = [new(0, A, "cuda:0", false), new(1, A, "cuda:1", false), new(2, A, "cuda:0", false)],
        };
        var plan = PlacementPlanner.Plan([model], TwoGpuNodes, current)[model.Key];
        Assert.Equal([new ReplicaAssignment(0, A, "cuda:0", Retiring: true), new ReplicaAssignment(3, B, "cuda:0", Retiring: false)],
            plan.Assignments);
        Assert.Equal(0, plan.Shortfall);
    }

    [Fact]
    public void A_misplaced_replica_keeps_its_memory_until_it_retires()
    {
        // m1 (4000 MB) must leave gpu-a; m2 (14000 MB, placed first as the larger) must not be planned into
        // the space m1 still holds on gpu-a's cuda:0.
        var m1 = Model("m1", 1, memoryMb: 4_000, placement: new ModelPlacement(["gpu-b"], [], Spread: false));
        var m2 = Model("m2", 2, memoryMb: 14_000);
        var nodes = new[] { Node(A, "gpu-a", ("cuda:0", 16_000)), Node(B, "gpu-b", ("cuda:0", 16_000), ("cuda:1", 16_000)) };
        var current = new Dictionary<ModelKey, ReplicaAssignment[]> { [m1.Key] = [new(0, A, "cuda:0", false)] };
        var plans = PlacementPlanner.Plan([m1, m2], nodes, current);

        Assert.DoesNotContain(plans[m2.Key].Assignments, a => a.NodeAddress == A);
        Assert.Equal(0, plans[m2.Key].Shortfall);

        // With gpu-b full, m1 has nowhere to go: it keeps serving on gpu-a, and says why.
        Assert.Equal([new ReplicaAssignment(0, A, "cuda:0", false)], plans[m1.Key].Assignments);
        Assert.Contains("it stays there until it can move", plans[m1.Key].Unplaced, StringComparison.Ordinal);
        Assert.All(DeclaredPerDevice(plans, m1, m2).Values, used => Assert.True(used <= 16_000, $"{used} MB on a 16000 MB device"));
    }

    [Fact]
    public void A_new_replica_never_takes_an_index_below_the_floor()
    {
        var model = Model("m", 2);
        var plan = PlacementPlanner.Plan([model], TwoGpuNodes, new Dictionary<ModelKey, ReplicaAssignment[]>(),
            new Dictionary<ModelKey, int> { [model.Key] = 7 })[model.Key];
        Assert.Equal([7, 8], plan.Assignments.Select(a => a.Index));
    }
}
