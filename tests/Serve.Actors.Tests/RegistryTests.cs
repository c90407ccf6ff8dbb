using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Actors.Tests;

/// <summary>
/// The registry singleton's behaviour, with a probe standing in for the shard region. Forgetting the
/// replicas of a removed node needs a real member to leave; the multi-process tests cover that.
/// </summary>
public sealed class RegistryTests() : ClusterTestKit("registry")
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static ModelDefinition Model(string name, string version = "1.0", int replicas = 2) =>
        new(name, version, new TorchScriptSource($"{name}.pt"), BuiltInHandlers.Tensor, replicas, 1, 0, 100, 30, null);

    private (IActorRef Registry, TestProbe Region) Start()
    {
        var region = CreateTestProbe();
        var settings = new RegistrySettings(TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(10), SnapshotEvery: 3);
        return (Sys.ActorOf(ModelRegistryActor.Props(region.Ref, settings)), region);
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
        Assert.Equal(3, region.ReceiveN(3, Wait).Cast<EnsureReplica>().Count());
        registry.Tell(new ScaleModel("m", "1.0", 1), TestActor);
        ExpectMsg<RegistryResult>(Wait);
        Assert.Equal(["m/1.0/1", "m/1.0/2"], region.ReceiveN(3, Wait).OfType<StopReplica>().Select(s => s.Replica.EntityId).Order());

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
        var (registry, _) = Start();
        registry.Tell(new RegisterModels([Model("m")]), TestActor);
        ExpectMsg<ModelsRegistered>(Wait);
        var self = Cluster.Get(Sys).SelfAddress.ToString();
        var elsewhere = "akka.tcp://serve@10.0.0.9:4053";
        registry.Tell(new ReplicaStatusReport(new ReplicaStatus(new ReplicaId("m", "1.0", 0), ReplicaState.Ready, self, "cpu:0", null, 0, null, DateTime.UtcNow)));
        registry.Tell(new ReplicaStatusReport(new ReplicaStatus(new ReplicaId("m", "1.0", 1), ReplicaState.Loading, elsewhere, "", null, 0, null, DateTime.UtcNow)));
        // A status for a replica the model does not have (index beyond its count) is ignored.
        registry.Tell(new ReplicaStatusReport(new ReplicaStatus(new ReplicaId("m", "1.0", 7), ReplicaState.Ready, self, "cpu:0", null, 0, null, DateTime.UtcNow)));

        var entry = Catalog(registry).Entries.Single();
        Assert.Equal([ReplicaState.Ready, ReplicaState.Loading], entry.Replicas.OrderBy(r => r.Replica.Index).Select(r => r.State));

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
