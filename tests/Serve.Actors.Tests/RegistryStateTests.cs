using Serve.Actors.Placement;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Actors.Tests;

/// <summary>The registry's plan book and observed state as plain objects: no actor system, a manual clock.</summary>
public sealed class RegistryStateTests
{
    private const string A = "akka.tcp://serve@10.0.0.1:4054";
    private const string B = "akka.tcp://serve@10.0.0.2:4054";
    private static readonly ModelKey Key = new("m", "1.0");

    private readonly ManualTime _time = new();
    private readonly ObservedState _observed;
    private readonly PlanBook _book = new();

    public RegistryStateTests() =>
        _observed = new ObservedState(RegistrySettings.Default with { Time = _time, NewWorkerSettle = TimeSpan.FromMilliseconds(300) });

    private static NodeInventory Node(string address, string name, long memoryMb = 16_000) =>
        new(address, name, [new DeviceCapacity("cuda:0", memoryMb, -1)]);

    private static ModelDefinition Model(int replicas, int memoryMb = 0) =>
        new("m", "1.0", new TorchScriptSource("m.pt"), BuiltInHandlers.Tensor, replicas, 1, 0, 100, 120, null) { DeviceMemoryMb = memoryMb };

    private static DesiredState Desired(params ModelDefinition[] models)
    {
        var desired = new DesiredState();
        foreach (var model in models)
        {
            Apply(desired, desired.Register(model, fromConfiguration: false));
        }

        return desired;
    }

    private static void Apply(DesiredState desired, Decision decision)
    {
        Assert.Null(decision.Result.Error);
        foreach (var change in decision.Events)
        {
            desired.Apply(change);
        }
    }

    private static ReplicaStatus Status(int index, string node, ReplicaState state = ReplicaState.Ready, string device = "cuda:0") =>
        new(new ReplicaId("m", "1.0", index), state, node, device, null, 0, null, DateTime.UnixEpoch);

    private void Report(params NodeInventory[] nodes)
    {
        foreach (var node in nodes)
        {
            _observed.Report(node);
        }
    }

    [Fact]
    public void A_run_time_registration_naming_an_absolute_path_is_refused_and_start_up_configuration_may()
    {
        var outside = Model(1) with { Source = new TorchScriptSource("/etc/models/m.pt") };
        var refused = new DesiredState().Register(outside, fromConfiguration: false);
        Assert.Equal(ServeErrorKind.BadInput, refused.Result.Error?.Kind);
        Assert.Contains("absolute path", refused.Result.Error?.Message);
        Assert.Empty(refused.Events);
        Assert.Equal(ServeErrorKind.BadInput, new DesiredState().Register(Model(1) with { LabelsPath = "/etc/passwd" }, fromConfiguration: false).Result.Error?.Kind);

        Assert.Null(new DesiredState().Register(outside, fromConfiguration: true).Result.Error);
    }

    [Fact]
    public void The_first_plan_wakes_every_replica_on_its_device_and_the_same_plan_again_changes_nothing()
    {
        var desired = Desired(Model(replicas: 2));
        Report(Node(A, "a"), Node(B, "b"));

        var first = _book.Replan(desired, _observed.Nodes);
        var again = _book.Replan(desired, _observed.Nodes);

        Assert.True(first.Changed);
        Assert.Equal([A, B], first.Wake.Select(w => _book.AssignmentOf(w.Replica)!.NodeAddress).Order());
        Assert.All(first.Wake, w => Assert.Equal("cuda:0", w.Device));
        Assert.Empty(again.Wake);
        Assert.Empty(again.Stop);
        Assert.False(again.Changed);
    }

    [Fact]
    public void A_scale_down_stops_a_replica_and_its_index_is_not_given_out_again()
    {
        var desired = Desired(Model(replicas: 2));
        Report(Node(A, "a"));
        _book.Replan(desired, _observed.Nodes);

        Apply(desired, desired.Scale("m", "1.0", 1));
        var down = _book.Replan(desired, _observed.Nodes);
        Apply(desired, desired.Scale("m", "1.0", 2));
        var up = _book.Replan(desired, _observed.Nodes);

        Assert.Equal(1, Assert.Single(down.Stop).Replica.Index);
        Assert.Equal(2, Assert.Single(up.Wake).Replica.Index);
    }

    [Fact]
    public void A_node_that_leaves_takes_its_replicas_out_of_the_plan_and_they_are_placed_on_another()
    {
        var desired = Desired(Model(replicas: 2));
        Report(Node(A, "a"), Node(B, "b"));
        _book.Replan(desired, _observed.Nodes);

        Assert.True(_observed.ForgetNode(B));
        Assert.Equal(1, _book.ForgetNode(B));
        var replanned = _book.Replan(desired, _observed.Nodes);

        var woken = Assert.Single(replanned.Wake);
        Assert.Equal(A, _book.AssignmentOf(woken.Replica)!.NodeAddress);
        Assert.Equal(2, _book.ActiveCount(Key));
        Assert.Equal(2, _book.WakeAll(desired).Count());
    }

    [Fact]
    public void An_unreachable_nodes_replicas_are_replaced_on_reachable_nodes_under_new_indices_and_retire_once_those_serve()
    {
        var desired = Desired(Model(replicas: 2));
        Report(Node(A, "a"), Node(B, "b"));
        _book.Replan(desired, _observed.Nodes);
        var onB = _book.PlanOf(Key).Assignments.Single(a => a.NodeAddress == B);

        Assert.True(_observed.SetUnreachable(B, unreachable: true));
        Assert.Equal([onB.Index], _book.ReplaceOn(B).Select(r => r.Index));
        var replanned = _book.Replan(desired, _observed.PlacementNodes);

        var replacement = Assert.Single(replanned.Wake);
        Assert.NotEqual(onB.Index, replacement.Replica.Index);
        Assert.Equal(A, _book.AssignmentOf(replacement.Replica)!.NodeAddress);
        Assert.Empty(replanned.Stop);
        Assert.True(_book.AssignmentOf(new ReplicaId("m", "1.0", onB.Index))!.Retiring);

        // Both active replicas serve on A: the unreachable one is due to retire.
        foreach (var active in _book.PlanOf(Key).Active)
        {
            _observed.Record(Status(active.Index, A));
        }

        Assert.Equal([onB.Index], _book.DueToRetire(_observed).Select(r => r.Index));
    }

    [Fact]
    public void A_node_back_before_a_replacement_found_room_serves_its_replicas_again()
    {
        var desired = Desired(Model(replicas: 2, memoryMb: 10_000));
        Report(Node(A, "a", memoryMb: 16_000), Node(B, "b", memoryMb: 16_000));
        _book.Replan(desired, _observed.Nodes);

        _observed.SetUnreachable(B, unreachable: true);
        var replaced = _book.ReplaceOn(B);
        var replanned = _book.Replan(desired, _observed.PlacementNodes);
        Assert.Empty(replanned.Wake); // A has no room for a second 10 GB replica
        Assert.Equal(1, _book.ActiveCount(Key));

        _observed.SetUnreachable(B, unreachable: false);
        _book.Reinstate(B, replaced, desired);
        _book.Replan(desired, _observed.PlacementNodes);

        Assert.Equal(2, _book.ActiveCount(Key));
        Assert.False(_book.AssignmentOf(replaced.Single())!.Retiring);
    }

    [Fact]
    public void A_moved_replica_retires_only_after_its_replacement_serves_and_is_scheduled_once()
    {
        var desired = Desired(Model(replicas: 1));
        Report(Node(A, "a"), Node(B, "b"));
        _book.Replan(desired, _observed.Nodes);
        var old = new ReplicaId("m", "1.0", 0);
        var oldNode = _book.AssignmentOf(old)!.NodeAddress;
        var newNode = oldNode == A ? B : A;
        Apply(desired, desired.Place(new ChangePlacement("m", "1.0", [newNode == A ? "a" : "b"], null, -1, -1)));

        var moved = _book.Replan(desired, _observed.Nodes);
        var replacement = Assert.Single(moved.Wake).Replica;
        Assert.True(_book.AssignmentOf(old)!.Retiring);
        Assert.Empty(_book.DueToRetire(_observed));
        Assert.Null(_book.Retire(old, _observed));

        _observed.Record(Status(replacement.Index, newNode));
        Assert.Equal([old], _book.DueToRetire(_observed));
        Assert.Empty(_book.DueToRetire(_observed));
        Assert.Equal(new StopReplica(old), _book.Retire(old, _observed));
        Assert.Null(_book.AssignmentOf(old));
    }

    [Fact]
    public void Hosted_replicas_unknown_to_the_plan_are_adopted_only_while_the_model_needs_them()
    {
        var desired = Desired(Model(replicas: 1));
        var inventory = Node(A, "a") with
        {
            Hosted = [new HostedReplica(new ReplicaId("m", "1.0", 4), "cuda:0"), new HostedReplica(new ReplicaId("m", "1.0", 5), "cuda:0")],
        };

        Assert.True(_book.AdoptHosted(inventory, desired));
        Assert.Equal(1, _book.ActiveCount(Key));
        Assert.NotNull(_book.AssignmentOf(new ReplicaId("m", "1.0", 4)));
        Assert.Null(_book.AssignmentOf(new ReplicaId("m", "1.0", 5)));
        Assert.False(_book.AdoptHosted(inventory, desired));
    }

    [Fact]
    public void A_change_that_cannot_fit_says_why_and_one_that_fits_does_not()
    {
        var desired = Desired(Model(replicas: 1, memoryMb: 1_000));
        Report(Node(A, "a", memoryMb: 4_000));
        _book.Replan(desired, _observed.Nodes);

        var fits = desired.Copy();
        Apply(fits, fits.Scale("m", "1.0", 3));
        var tooMany = desired.Copy();
        Apply(tooMany, tooMany.Scale("m", "1.0", 5));

        Assert.Null(_book.WhyNoRoom(fits, [Key], [], _observed.Nodes));
        Assert.NotNull(_book.WhyNoRoom(tooMany, [Key], [], _observed.Nodes));
        Assert.Equal(1, desired.Find(Key)!.Replicas);
    }

    [Fact]
    public void Placement_waits_for_a_worker_that_is_up_until_it_reports_then_for_the_settle_time()
    {
        Assert.False(_observed.PlacementMustWait);
        _observed.WorkerArriving(A);
        Assert.True(_observed.PlacementMustWait);

        Assert.Equal(InventoryChange.Arrived, _observed.Report(Node(A, "a")));
        Assert.True(_observed.PlacementMustWait);
        _time.Advance(TimeSpan.FromMilliseconds(300));
        Assert.False(_observed.PlacementMustWait);

        _observed.WorkerArriving(B);
        _time.Advance(ObservedState.InventoryWait);
        Assert.False(_observed.PlacementMustWait);
    }

    [Fact]
    public void Reports_say_what_changed_and_a_node_that_left_is_not_brought_back_by_a_late_one()
    {
        Assert.Equal(InventoryChange.Arrived, _observed.Report(Node(A, "a")));
        Assert.Equal(InventoryChange.Unchanged, _observed.Report(Node(A, "a")));
        Assert.Equal(InventoryChange.UseChanged, _observed.Report(new NodeInventory(A, "a", [new DeviceCapacity("cuda:0", 16_000, 900)])));
        Assert.Equal(InventoryChange.DevicesChanged, _observed.Report(Node(A, "a", memoryMb: 8_000)));

        _observed.ForgetNode(A);
        Assert.Equal(InventoryChange.Ignored, _observed.Report(Node(A, "a")));
        Assert.Empty(_observed.Nodes);
        _observed.WorkerArriving(A);
        Assert.Equal(InventoryChange.Arrived, _observed.Report(Node(A, "a")));
    }

    [Fact]
    public void A_stopped_report_from_a_node_the_replica_left_is_stale_and_a_same_status_is_no_change()
    {
        Assert.True(_observed.Record(Status(0, B)));
        Assert.False(_observed.Record(Status(0, B)));

        Assert.False(_observed.Record(Status(0, A, ReplicaState.Stopped)));
        Assert.Equal(B, _observed.StatusOf(new ReplicaId("m", "1.0", 0))!.NodeAddress);
        Assert.True(_observed.Record(Status(0, B, ReplicaState.Stopped)));
        Assert.False(_observed.IsServing(new ReplicaId("m", "1.0", 0), new ReplicaAssignment(0, B, "cuda:0", false)));
    }
}
