using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit;
using Serve.Actors.Hosting;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Actors.Tests;

/// <summary>
/// The registry singleton's behaviour, with a probe standing in for the shard region and workers that
/// exist only as the devices they report (this node is a gateway only). Forgetting the replicas of a
/// removed node needs a real member to leave; the multi-process tests cover that.
/// </summary>
public sealed class RegistryTests() : ClusterTestKit("registry", ServeRoles.Gateway)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static ModelDefinition Model(string name, string version = "1.0", int replicas = 2) =>
        new(name, version, new TorchScriptSource($"{name}.pt"), BuiltInHandlers.Tensor, replicas, 1, 0, 100, 30, null);

    private const string WorkerA = "akka.tcp://serve@10.0.0.1:4054";
    private const string WorkerB = "akka.tcp://serve@10.0.0.2:4054";

    private static NodeInventory Worker(string address, string name, long memoryMb = 16_000) =>
        new(address, name, [new DeviceCapacity("cuda:0", memoryMb, -1), new DeviceCapacity("cuda:1", memoryMb, -1)]);

    /// <summary>A registry with one worker (two 16 GB devices) reported.</summary>
    private (IActorRef Registry, TestProbe Region) Start() => StartWith(Worker(WorkerA, "a"));

    /// <summary>A registry with these workers reported.</summary>
    private (IActorRef Registry, TestProbe Region) StartWith(params NodeInventory[] workers) => StartSettling(null, workers);

    /// <summary>A registry with these workers reported, waiting <paramref name="settle"/> after each new worker (default 300 ms).</summary>
    private (IActorRef Registry, TestProbe Region) StartSettling(TimeSpan? settle, params NodeInventory[] workers)
    {
        var region = CreateTestProbe();
        var settings = new RegistrySettings(TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(10), SnapshotEvery: 3,
            RetireGrace: TimeSpan.FromMilliseconds(100));
        settings = settle is { } wait ? settings with { NewWorkerSettle = wait } : settings;
        var registry = Sys.ActorOf(ModelRegistryActor.Props(region.Ref, settings));
        foreach (var worker in workers)
        {
            registry.Tell(worker);
        }

        return (registry, region);
    }

    private static ReplicaStatusReport Status(string replica, ReplicaState state, string node, string device)
    {
        Assert.True(ReplicaId.TryParse(replica, out var id));
        return new ReplicaStatusReport(new ReplicaStatus(id, state, node, device, null, 0, null, DateTime.UtcNow));
    }

    private CatalogSnapshot Catalog(IActorRef registry)
    {
        registry.Tell(GetCatalog.Instance, TestActor);
        return ExpectMsg<CatalogSnapshot>(Wait);
    }

    [Fact]
    public void Registering_wakes_every_replica_and_the_first_version_is_the_default()
    {
        var (registry, region) = Start();
        registry.Tell(new RegisterModels([Model("m"), Model("m", "2.0", replicas: 1)]), TestActor);

        var registered = ExpectMsg<ModelsRegistered>(Wait);
        Assert.Equal(["m/1.0", "m/2.0"], registered.Registered);
        Assert.Empty(registered.Problems);
        var woken = region.ReceiveN(3, Wait).Cast<EnsureReplica>().Select(e => e.Replica.EntityId).Order().ToArray();
        Assert.Equal(["m/1.0/0", "m/1.0/1", "m/2.0/0"], woken);

        var catalog = Catalog(registry);
        Assert.True(catalog.Entries.Single(e => e.Definition.Version == "1.0").IsDefault);
        Assert.False(catalog.Entries.Single(e => e.Definition.Version == "2.0").IsDefault);
    }

    [Fact]
    public void Start_up_models_registered_again_change_nothing_or_take_the_configured_settings()
    {
        var (registry, region) = Start();
        registry.Tell(new RegisterModels([Model("m")]), TestActor);
        ExpectMsg<ModelsRegistered>(Wait);
        region.ReceiveN(2, Wait);

        registry.Tell(new RegisterModels([Model("m")]), TestActor);
        Assert.Empty(ExpectMsg<ModelsRegistered>(Wait).Registered);

        registry.Tell(new RegisterModels([Model("m", replicas: 3), Model("bad name") with { BatchSize = 0 }]), TestActor);
        var changed = ExpectMsg<ModelsRegistered>(Wait);
        Assert.Equal(["m/1.0"], changed.Registered);
        Assert.Contains(changed.Problems, p => p.Contains("model name 'bad name' is invalid") && p.Contains("batch_size"));
        Assert.Equal(3, Catalog(registry).Entries.Single().Definition.Replicas);
    }

    [Fact]
    public void Start_up_models_the_configuration_no_longer_names_are_unregistered_and_api_models_stay()
    {
        var (registry, _) = Start();
        registry.Tell(new RegisterModels([Model("m"), Model("x")]), TestActor);
        ExpectMsg<ModelsRegistered>(Wait);
        registry.Tell(new RegisterModel(Model("api")), TestActor);
        Assert.Null(ExpectMsg<RegistryResult>(Wait).Error);
        registry.Tell(new RegisterModel(Model("m", "2.0")), TestActor);
        Assert.Null(ExpectMsg<RegistryResult>(Wait).Error);

        registry.Tell(new RegisterModels([Model("y")]), TestActor);

        var result = ExpectMsg<ModelsRegistered>(Wait);
        Assert.Equal(["y/1.0"], result.Registered);
        Assert.Equal(["m/1.0", "x/1.0"], result.Removed.Order(StringComparer.Ordinal));
        var entries = Catalog(registry).Entries;
        Assert.Equal(["api/1.0", "m/2.0", "y/1.0"], entries.Select(e => e.Definition.Key.ToString()).Order(StringComparer.Ordinal));
        Assert.True(entries.Single(e => e.Definition.Name == "m").IsDefault, "m's API version became its default");
    }

    [Fact]
    public void Management_changes_to_a_start_up_model_outlive_the_same_configuration_but_not_a_changed_one()
    {
        var (registry, _) = Start();
        registry.Tell(new RegisterModels([Model("m")]), TestActor);
        ExpectMsg<ModelsRegistered>(Wait);
        registry.Tell(new ScaleModel("m", null, 5), TestActor);
        ExpectMsg<RegistryResult>(Wait);
        Watch(registry);
        Sys.Stop(registry);
        ExpectTerminated(registry, Wait);

        // The next start: the journal brings the scaled model back, and the unchanged configuration keeps it.
        var (again, _) = Start();
        again.Tell(new RegisterModels([Model("m")]), TestActor);
        Assert.Empty(ExpectMsg<ModelsRegistered>(Wait).Registered);
        Assert.Equal(5, Catalog(again).Entries.Single().Definition.Replicas);

        again.Tell(new RegisterModels([Model("m") with { BatchSize = 4 }]), TestActor);
        Assert.Equal(["m/1.0"], ExpectMsg<ModelsRegistered>(Wait).Registered);
        var definition = Catalog(again).Entries.Single().Definition;
        Assert.Equal((4, 2), (definition.BatchSize, definition.Replicas));
    }

    [Fact]
    public void Management_commands_follow_torchserves_rules()
    {
        var (registry, region) = Start();
        registry.Tell(new RegisterModel(Model("m", replicas: 1)), TestActor);
        Assert.Equal("Model \"m\" Version: 1.0 registered with 1 initial workers", ExpectMsg<RegistryResult>(Wait).Message);
        registry.Tell(new RegisterModel(Model("m", replicas: 1)), TestActor);
        Assert.Equal(ServeErrorKind.Conflict, ExpectMsg<RegistryResult>(Wait).Error!.Kind);
        registry.Tell(new RegisterModel(Model("m", "2.0", replicas: 0)), TestActor);
        Assert.Contains("registered with 0 initial workers", ExpectMsg<RegistryResult>(Wait).Message);
        region.ReceiveN(1, Wait);

        registry.Tell(new UnregisterModel("m", "1.0"), TestActor);
        var forbidden = ExpectMsg<RegistryResult>(Wait);
        Assert.Equal(ServeErrorKind.Forbidden, forbidden.Error!.Kind);
        Assert.Equal("Cannot remove default version for model m", forbidden.Message);

        registry.Tell(new SetDefaultVersion("m", "2.0"), TestActor);
        Assert.Equal("Default version successfully updated for model \"m\" to \"2.0\"", ExpectMsg<RegistryResult>(Wait).Message);
        registry.Tell(new SetDefaultVersion("m", "9.9"), TestActor);
        Assert.Equal(ServeErrorKind.NotFound, ExpectMsg<RegistryResult>(Wait).Error!.Kind);

        registry.Tell(new ScaleModel("m", "1.0", 3), TestActor);
        Assert.Equal("Workers scaled to 3 for model: m, version: 1.0", ExpectMsg<RegistryResult>(Wait).Message);
        Assert.Equal(["m/1.0/1", "m/1.0/2"], region.ReceiveN(2, Wait).Cast<EnsureReplica>().Select(e => e.Replica.EntityId).Order());
        registry.Tell(new ScaleModel("m", "1.0", 1), TestActor);
        ExpectMsg<RegistryResult>(Wait);
        Assert.Equal(["m/1.0/1", "m/1.0/2"], region.ReceiveN(2, Wait).Cast<StopReplica>().Select(s => s.Replica.EntityId).Order());

        registry.Tell(new UnregisterModel("m", "1.0"), TestActor);
        Assert.Equal("Model \"m\" unregistered", ExpectMsg<RegistryResult>(Wait).Message);
        Assert.Equal("m/1.0/0", region.ExpectMsg<StopReplica>(Wait).Replica.EntityId);
        registry.Tell(new UnregisterModel("nope", null), TestActor);
        Assert.Equal("Model not found: nope", ExpectMsg<RegistryResult>(Wait).Message);
        Assert.Equal(["2.0"], Catalog(registry).Entries.Select(e => e.Definition.Version));
    }

    [Fact]
    public void The_desired_state_survives_the_registry_and_replays_from_the_journal()
    {
        var (registry, _) = Start();
        registry.Tell(new RegisterModel(Model("a")), TestActor);
        registry.Tell(new RegisterModel(Model("a", "2.0")), TestActor);
        registry.Tell(new SetDefaultVersion("a", "2.0"), TestActor);
        registry.Tell(new ScaleModel("a", "1.0", 4), TestActor);
        registry.Tell(new RegisterModel(Model("b")), TestActor);
        ReceiveN(5, Wait);
        Watch(registry);
        Sys.Stop(registry);
        ExpectTerminated(registry, Wait);

        var (again, _) = Start();
        var catalog = Catalog(again);
        Assert.Equal(["a/1.0", "a/2.0", "b/1.0"], catalog.Entries.Select(e => e.Definition.Key.ToString()));
        Assert.True(catalog.Entries.Single(e => e.Definition.Key.ToString() == "a/2.0").IsDefault);
        Assert.Equal(4, catalog.Entries.Single(e => e.Definition.Key.ToString() == "a/1.0").Definition.Replicas);
    }

    [Fact]
    public void Replicas_resolve_their_definition()
    {
        var (registry, _) = Start();
        registry.Tell(new RegisterModels([Model("m")]), TestActor);
        ExpectMsg<ModelsRegistered>(Wait);

        registry.Tell(new ResolveModel(new ModelKey("m", "1.0")), TestActor);
        Assert.Equal("m.pt", ((TorchScriptSource)ExpectMsg<ModelResolved>(Wait).Definition!.Source).Path);
        registry.Tell(new ResolveModel(new ModelKey("m", "9.9")), TestActor);
        Assert.Null(ExpectMsg<ModelResolved>(Wait).Definition);
    }

    [Fact]
    public void Replica_statuses_appear_in_the_catalog()
    {
        var (registry, region) = Start();
        registry.Tell(new RegisterModels([Model("m")]), TestActor);
        ExpectMsg<ModelsRegistered>(Wait);
        region.ReceiveN(2, Wait);
        var self = Cluster.Get(Sys).SelfAddress.ToString();
        var elsewhere = "akka.tcp://serve@10.0.0.9:4053";
        registry.Tell(new ReplicaStatusReport(new ReplicaStatus(new ReplicaId("m", "1.0", 0), ReplicaState.Ready, self, "cpu:0", null, 0, null, DateTime.UtcNow)));
        registry.Tell(new ReplicaStatusReport(new ReplicaStatus(new ReplicaId("m", "1.0", 1), ReplicaState.Loading, elsewhere, "", null, 0, null, DateTime.UtcNow)));
        // A status for a replica the model does not have (index beyond its count) is ignored.
        registry.Tell(new ReplicaStatusReport(new ReplicaStatus(new ReplicaId("m", "1.0", 7), ReplicaState.Ready, self, "cpu:0", null, 0, null, DateTime.UtcNow)));

        var entry = Catalog(registry).Entries.Single();
        Assert.Equal([ReplicaState.Ready, ReplicaState.Loading], entry.Replicas.OrderBy(r => r.Replica.Index).Select(r => r.State));
    }

    [Fact]
    public void Replicas_are_placed_on_the_planned_device_and_the_catalog_shows_the_workers()
    {
        var (registry, region) = StartWith(Worker(WorkerA, "a"), Worker(WorkerB, "b"));
        registry.Tell(new RegisterModel(Model("m") with { DeviceMemoryMb = 10_000 }), TestActor);
        ExpectMsg<RegistryResult>(Wait);
        var woken = region.ReceiveN(2, Wait).Cast<EnsureReplica>().ToList();
        Assert.All(woken, e => Assert.Equal("cuda:0", e.Device));

        var catalog = Catalog(registry);
        Assert.Equal(["a", "b"], catalog.Nodes.Select(n => n.Name));
        Assert.Equal([WorkerA, WorkerB], catalog.Entries.Single().Assignments.Select(a => a.NodeAddress).Order());
    }

    [Fact]
    public void What_does_not_fit_is_refused_with_the_reason_and_changes_nothing()
    {
        var (registry, region) = Start();
        registry.Tell(new RegisterModel(Model("big", replicas: 1) with { DeviceMemoryMb = 20_000 }), TestActor);
        var refused = ExpectMsg<RegistryResult>(Wait);
        Assert.Equal(ServeErrorKind.ResourceExhausted, refused.Error!.Kind);
        Assert.Equal("1 replica of model big version 1.0 cannot be placed: each replica declares 20000 MB of device memory, " +
                     "and the most free on an allowed device is 16000 MB (cuda:0 on a)", refused.Message);
        Assert.Empty(Catalog(registry).Entries);

        registry.Tell(new RegisterModel(Model("m", replicas: 2) with { DeviceMemoryMb = 10_000 }), TestActor);
        Assert.Null(ExpectMsg<RegistryResult>(Wait).Error);
        region.ReceiveN(2, Wait);
        registry.Tell(new ScaleModel("m", null, 3), TestActor);
        Assert.Contains("1 replica of model m version 1.0 cannot be placed", ExpectMsg<RegistryResult>(Wait).Message, StringComparison.Ordinal);
        registry.Tell(new ChangePlacement("m", "1.0", ["nowhere"], null, -1, -1), TestActor);
        Assert.Contains("no worker node is named nowhere", ExpectMsg<RegistryResult>(Wait).Message, StringComparison.Ordinal);
        Assert.Equal(2, Catalog(registry).Entries.Single().Definition.Replicas);
        region.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void A_pinned_move_starts_the_replacement_and_retires_the_old_replica_only_once_it_serves()
    {
        var (registry, region) = StartWith(Worker(WorkerA, "a"), Worker(WorkerB, "b"));
        registry.Tell(new RegisterModel(Model("m", replicas: 1) with { Placement = new ModelPlacement(["a"], [], false) }), TestActor);
        ExpectMsg<RegistryResult>(Wait);
        Assert.Equal("m/1.0/0", region.ExpectMsg<EnsureReplica>(Wait).Replica.EntityId);
        registry.Tell(Status("m/1.0/0", ReplicaState.Ready, WorkerA, "cuda:0"));

        registry.Tell(new ChangePlacement("m", "1.0", ["b"], ["cuda:1"], -1, -1), TestActor);
        Assert.Equal("Placement of model \"m\" version 1.0 set to nodes b; devices cuda:1 with 0 MB of device memory per replica",
            ExpectMsg<RegistryResult>(Wait).Message);
        var replacement = region.ExpectMsg<EnsureReplica>(Wait);
        Assert.Equal(("m/1.0/1", "cuda:1"), (replacement.Replica.EntityId, replacement.Device));
        var assignments = Catalog(registry).Entries.Single().Assignments;
        Assert.Equal([new ReplicaAssignment(0, WorkerA, "cuda:0", Retiring: true), new ReplicaAssignment(1, WorkerB, "cuda:1", Retiring: false)],
            assignments);

        // The old replica serves on while the new one loads, and stops once the new one is ready.
        registry.Tell(Status("m/1.0/1", ReplicaState.Loading, WorkerB, "cuda:1"));
        region.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        registry.Tell(Status("m/1.0/1", ReplicaState.Ready, WorkerB, "cuda:1"));
        Assert.Equal("m/1.0/0", region.ExpectMsg<StopReplica>(Wait).Replica.EntityId);
        Assert.Equal([new ReplicaAssignment(1, WorkerB, "cuda:1", Retiring: false)], Catalog(registry).Entries.Single().Assignments);
    }

    [Fact]
    public void A_change_made_while_a_new_worker_settles_is_pending_in_the_catalog_until_it_is_planned()
    {
        // A settling time long enough that the move below surely lands inside it, however slow the machine.
        var (registry, region) = StartSettling(TimeSpan.FromSeconds(2), Worker(WorkerA, "a"));
        registry.Tell(new RegisterModel(Model("m", replicas: 1) with { Placement = new ModelPlacement(["a"], [], false) }), TestActor);
        ExpectMsg<RegistryResult>(Wait);
        region.ExpectMsg<EnsureReplica>(Wait);
        registry.Tell(Status("m/1.0/0", ReplicaState.Ready, WorkerA, "cuda:0"));

        // Worker b has just reported, so planning waits for it to settle; the move is answered at once.
        registry.Tell(Worker(WorkerB, "b"));
        registry.Tell(new ChangePlacement("m", "1.0", ["b"], [], -1, -1), TestActor);
        Assert.Null(ExpectMsg<RegistryResult>(Wait).Error);

        // The catalog says the plan is pending, not planned with the replica still only where it was (a
        // synchronous caller would take that for "moved").
        var answered = Catalog(registry);
        Assert.True(answered.ReplanPending, "the catalog claims a current plan that ignores the move");
        Assert.Equal([new ReplicaAssignment(0, WorkerA, "cuda:0", Retiring: false)], answered.Entries.Single().Assignments);
        Assert.Equal("m/1.0/1", region.ExpectMsg<EnsureReplica>(Wait).Replica.EntityId);
        var planned = Catalog(registry);
        Assert.False(planned.ReplanPending);
        Assert.Equal([new ReplicaAssignment(0, WorkerA, "cuda:0", Retiring: true), new ReplicaAssignment(1, WorkerB, "cuda:0", Retiring: false)],
            planned.Entries.Single().Assignments);
    }

    [Fact]
    public void Nothing_is_woken_before_a_worker_reports_and_a_running_replica_is_adopted_where_it_is()
    {
        var (registry, region) = StartWith();
        registry.Tell(new RegisterModel(Model("m", replicas: 1)), TestActor);
        ExpectMsg<RegistryResult>(Wait);
        region.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.Equal("1 replica of model m version 1.0 cannot be placed: no worker node has joined the cluster",
            Catalog(registry).Entries.Single().Unplaced);

        registry.Tell(Worker(WorkerA, "a"));
        Assert.Equal(("m/1.0/0", "cuda:0"), region.ExpectMsg<EnsureReplica>(Wait) is var e ? (e.Replica.EntityId, e.Device) : default);

        // A replica that runs elsewhere than planned (it ran before this registry took over) stays where it runs.
        registry.Tell(Status("m/1.0/0", ReplicaState.Ready, WorkerA, "cuda:1"));
        Assert.Equal([new ReplicaAssignment(0, WorkerA, "cuda:1", false)], Catalog(registry).Entries.Single().Assignments);
    }

    [Fact]
    public void A_registry_that_takes_over_adopts_the_replicas_workers_hold_where_they_run()
    {
        var (registry, region) = StartWith();
        registry.Tell(new RegisterModel(Model("m", replicas: 1)), TestActor);
        ExpectMsg<RegistryResult>(Wait);

        // The worker reports that it already runs replica 5 (placed by an earlier registry) on cuda:1.
        registry.Tell(Worker(WorkerA, "a") with { Hosted = [new HostedReplica(new ReplicaId("m", "1.0", 5), "cuda:1")] });
        AwaitAssert(() => Assert.Equal([new ReplicaAssignment(5, WorkerA, "cuda:1", false)], Catalog(registry).Entries.Single().Assignments),
            Wait);
        region.ExpectNoMsg(TimeSpan.FromMilliseconds(500));

        // A later registration gets a new index above every one in use.
        registry.Tell(new ScaleModel("m", null, 2), TestActor);
        ExpectMsg<RegistryResult>(Wait);
        Assert.Equal("m/1.0/6", region.ExpectMsg<EnsureReplica>(Wait).Replica.EntityId);
    }
}



public sealed class CatalogStateTests
{
    private const string Node = "akka.tcp://serve@127.0.0.1:1";

    private static CatalogState State(bool received, IReadOnlySet<string>? unavailable, params (ReplicaState State, int Replicas)[] models)
    {
        var entries = models.Select((m, i) =>
        {
            var definition = new ModelDefinition($"m{i}", "1.0", new TorchScriptSource("m.pt"), BuiltInHandlers.Tensor, m.Replicas, 1, 0, 100, 30, null);
            return new CatalogEntry(definition, true,
                [.. Enumerable.Range(0, m.Replicas).Select(r => new ReplicaStatus(new ReplicaId($"m{i}", "1.0", r), m.State, Node, "cpu:0", null, 0, null, DateTime.UtcNow))]);
        });
        return new CatalogState(new CatalogSnapshot("x", 1, [.. entries]), received, unavailable ?? new HashSet<string>());
    }

    [Fact]
    public void Ready_needs_the_catalog_and_a_serving_replica_of_every_model_on_an_available_node()
    {
        Assert.False(State(received: false, null).AllModelsReady);
        Assert.True(State(received: true, null).AllModelsReady);
        Assert.True(State(true, null, (ReplicaState.Ready, 2), (ReplicaState.Ready, 1)).AllModelsReady);
        Assert.False(State(true, null, (ReplicaState.Ready, 2), (ReplicaState.Loading, 1)).AllModelsReady);
        Assert.False(State(true, new HashSet<string> { Node }, (ReplicaState.Ready, 2)).AllModelsReady);
    }

    [Fact]
    public void Healthy_unless_a_model_is_left_with_only_failed_replicas()
    {
        Assert.True(State(true, null, (ReplicaState.Loading, 1), (ReplicaState.Restarting, 2)).Healthy);
        Assert.False(State(true, null, (ReplicaState.Ready, 1), (ReplicaState.Failed, 2)).Healthy);
        Assert.True(State(true, null, (ReplicaState.Failed, 0)).Healthy);
    }

    [Fact]
    public void Lookups_fall_back_to_the_default_version()
    {
        var state = State(true, null, (ReplicaState.Ready, 1));
        Assert.Equal("1.0", state.Find("m0", null)!.Definition.Version);
        Assert.Null(state.Find("m0", "2.0"));
        Assert.Null(state.Find("nope", null));
    }
}

/// <summary>The registry's tenant quotas, on the pure desired state.</summary>
public sealed class TenantQuotaTests
{
    private static ModelDefinition Model(string name, string owner, int replicas = 1, int memoryMb = 0) =>
        new ModelDefinition(name, "1.0", new TorchScriptSource($"{name}.pt"), BuiltInHandlers.Tensor, replicas, 1, 0, 10, 30, null)
        {
            Owner = owner,
            DeviceMemoryMb = memoryMb,
        };

    /// <summary>Applies an accepted decision's events (a refusal fails the test).</summary>
    internal static void Apply(DesiredState state, Decision decision)
    {
        Assert.Null(decision.Result.Error);
        foreach (var change in decision.Events)
        {
            state.Apply(change);
        }
    }

    [Fact]
    public void Models_replicas_and_memory_are_counted_per_owner()
    {
        var state = new DesiredState();
        var limits = new TenantLimits("a", MaxModels: 2, MaxReplicas: 3, MaxDeviceMemoryMb: 2_500);
        Apply(state, state.Register(Model("one", "a", replicas: 2, memoryMb: 1_000), fromConfiguration: false, limits));
        Apply(state, state.Register(Model("other-tenants", "b", replicas: 5, memoryMb: 9_000), fromConfiguration: false, TenantLimits.None));

        var tooMany = state.Register(Model("two", "a", replicas: 2), fromConfiguration: false, limits);
        Assert.Equal(ServeErrorKind.QuotaExceeded, tooMany.Result.Error?.Kind);
        Assert.Contains("would have 4 replicas, more than its MaxReplicas quota of 3", tooMany.Result.Message);

        var tooMuchMemory = state.Scale("one", null, 3, limits);
        Assert.Equal(ServeErrorKind.QuotaExceeded, tooMuchMemory.Result.Error?.Kind);
        Assert.Contains("would declare 3000 MB", tooMuchMemory.Result.Message, StringComparison.Ordinal);

        Apply(state, state.Register(Model("two", "a", replicas: 1), fromConfiguration: false, limits));
        var third = state.Register(Model("three", "a", replicas: 0), fromConfiguration: false, limits);
        Assert.Contains("would have 3 model versions registered, more than its MaxModels quota of 2", third.Result.Message);

        // Scaling down always fits, whatever the quota.
        Assert.Null(state.Scale("one", null, 1, limits with { MaxReplicas = 1 }).Result.Error);
    }
}

/// <summary>Tenants created through the management API live in the registry's desired state and its snapshots.</summary>
public sealed class RegistryTenantTests
{
    [Fact]
    public void Tenants_are_defined_removed_and_survive_a_snapshot()
    {
        var state = new DesiredState();
        var tenant = new TenantDefinition("t", "T", [new string('b', 64)], 1, 0, 0, 0, 0, 2, 0, 0);
        foreach (var change in state.DefineTenant(tenant).Events)
        {
            state.Apply(change);
        }

        var restored = new DesiredState();
        restored.Restore(state.ToSnapshot());
        Assert.Equal("t", Assert.Single(restored.Tenants).Id);

        var removal = restored.RemoveTenant("t");
        foreach (var change in removal.Events)
        {
            restored.Apply(change);
        }

        Assert.Empty(restored.Tenants);
        Assert.Equal(ServeErrorKind.NotFound, restored.RemoveTenant("t").Result.Error?.Kind);

        foreach (var change in restored.DefineTenant(tenant).Events)
        {
            restored.Apply(change);
        }

        Assert.Equal(ServeErrorKind.Conflict, restored.DefineTenant(tenant).Result.Error?.Kind);
        foreach (var change in restored.RemoveTenant("t").Events)
        {
            restored.Apply(change);
        }

        // A snapshot taken before tenants existed has none.
        restored.Restore(new RegistrySnapshot([], [], []) { Tenants = null! });
        Assert.Empty(restored.Tenants);
    }
}

public sealed class RegistryTenantChangeTests
{
    private static readonly string OldKey = new('b', 64);
    private static readonly string NewKey = new('c', 64);

    private static DesiredState WithTenant()
    {
        var state = new DesiredState();
        TenantQuotaTests.Apply(state, state.DefineTenant(new TenantDefinition("t", "T", [OldKey], 1, 10, 20, 0, 0, 2, 0, 0)));
        return state;
    }

    [Fact]
    public void An_update_changes_only_the_settings_it_names_and_keeps_the_keys()
    {
        var state = WithTenant();
        TenantQuotaTests.Apply(state, state.UpdateTenant(new UpdateTenant("t", null, 3, -1, -1, 4, -1, -1, -1, 1024)));

        var t = Assert.Single(state.Tenants);
        Assert.Equal(("T", 3, 10, 20, 4, 0, 2, 0, 1024L),
            (t.Name, t.Weight, t.RequestsPerSecond, t.Burst, t.MaxConcurrent, t.MaxQueued, t.MaxModels, t.MaxReplicas, t.MaxDeviceMemoryMb));
        Assert.Equal([OldKey], t.KeySha256);
        Assert.Equal(ServeErrorKind.NotFound, state.UpdateTenant(new UpdateTenant("nobody", "x", -1, -1, -1, -1, -1, -1, -1, -1)).Result.Error?.Kind);
    }

    [Fact]
    public void A_key_is_added_beside_the_old_one_and_the_old_one_revoked_but_never_the_last()
    {
        var state = WithTenant();
        TenantQuotaTests.Apply(state, state.AddTenantKey(new AddTenantKey("t", NewKey)));
        Assert.Equal([OldKey, NewKey], Assert.Single(state.Tenants).KeySha256);

        Assert.Equal(ServeErrorKind.NotFound, state.RevokeTenantKey(new RevokeTenantKey("t", "0123456789abcdef")).Result.Error?.Kind);
        TenantQuotaTests.Apply(state, state.RevokeTenantKey(new RevokeTenantKey("t", TenantDefinition.KeyIdOf(OldKey))));
        Assert.Equal([NewKey], Assert.Single(state.Tenants).KeySha256);

        var last = state.RevokeTenantKey(new RevokeTenantKey("t", TenantDefinition.KeyIdOf(NewKey)));
        Assert.Equal(ServeErrorKind.Conflict, last.Result.Error?.Kind);
        Assert.Contains("only key", last.Result.Error!.Message, StringComparison.Ordinal);
        Assert.Equal(ServeErrorKind.NotFound, state.AddTenantKey(new AddTenantKey("nobody", OldKey)).Result.Error?.Kind);
    }

    [Fact]
    public void A_tenant_holds_a_bounded_number_of_keys()
    {
        var state = WithTenant();
        for (var i = 1; i < DesiredState.MaxKeysPerTenant; i++)
        {
            TenantQuotaTests.Apply(state, state.AddTenantKey(new AddTenantKey("t", new string((char)('0' + i), 64))));
        }

        Assert.Equal(ServeErrorKind.Conflict, state.AddTenantKey(new AddTenantKey("t", NewKey)).Result.Error?.Kind);
    }
}
