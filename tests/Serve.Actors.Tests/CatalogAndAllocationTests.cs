using System.Collections.Immutable;
using Akka.Actor;
using Serve.Actors.Hosting;
using Serve.Actors.Placement;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Actors.Tests;

/// <summary>
/// A node's catalog subscriber (what it keeps of the registry's catalogs) and the allocation strategy
/// that places replica shards by the plan in that catalog, each with a probe for the registry.
/// </summary>
public sealed class CatalogAndAllocationTests() : ClusterTestKit("catalog", ServeRoles.Gateway)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private const string Elsewhere = "akka.tcp://serve@10.0.0.9:4054";

    private static ModelDefinition Model(string name) =>
        new(name, "1.0", new TorchScriptSource($"{name}.pt"), BuiltInHandlers.Tensor, 2, 1, 0, 100, 30, null);

    private static CatalogSnapshot Snapshot(string incarnation, long revision, bool planned = true, params CatalogEntry[] entries) =>
        new(incarnation, revision, entries) { Planned = planned };

    private (CatalogView View, Akka.TestKit.TestProbe Registry) StartSubscriber()
    {
        var view = new CatalogView();
        var registry = CreateTestProbe();
        Sys.ActorOf(CatalogSubscriber.Props(view, registry.Ref));
        registry.ExpectMsg<GetCatalog>(Wait);
        return (view, registry);
    }

    private static Task AwaitRevisionAsync(CatalogView view, long revision) =>
        Waiting.UntilAsync(() => view.Current.Snapshot.Revision == revision, Wait, $"revision {revision} in the view");

    [Fact]
    public async Task The_subscriber_keeps_the_newest_catalog_of_a_registry_and_ignores_older_ones()
    {
        var (view, registry) = StartSubscriber();
        Assert.False(view.Current.Received);

        registry.Reply(Snapshot("a", 2, entries: new CatalogEntry(Model("m"), true, [])));
        await AwaitRevisionAsync(view, 2);
        Assert.True(view.Current.Received);
        Assert.NotNull(view.Current.Find("m", null));

        var subscriber = registry.LastSender;
        subscriber.Tell(Snapshot("a", 1));
        subscriber.Tell(Snapshot("a", 3, entries: new CatalogEntry(Model("n"), true, [])));
        await AwaitRevisionAsync(view, 3);
        Assert.Null(view.Current.Find("m", null));
        Assert.NotNull(view.Current.Find("n", null));
    }

    [Fact]
    public async Task A_successor_registry_that_has_not_planned_yet_does_not_replace_a_planned_catalog()
    {
        var (view, registry) = StartSubscriber();
        registry.Reply(Snapshot("old", 5, entries: new CatalogEntry(Model("m"), true, [])));
        await AwaitRevisionAsync(view, 5);
        var subscriber = registry.LastSender;

        // The new registry's first catalogs have no plan: the old one still says where the replicas run.
        subscriber.Tell(Snapshot("new", 1, planned: false));
        subscriber.Tell(Snapshot("new", 2, planned: true, new CatalogEntry(Model("m"), true, []), new CatalogEntry(Model("n"), true, [])));
        await AwaitRevisionAsync(view, 2);
        Assert.Equal("new", view.Current.Snapshot.RegistryIncarnation);
        Assert.NotNull(view.Current.Find("n", null));
    }

    private ReplicaAllocationStrategy Strategy(CatalogView view, Func<string, bool> isWorker) =>
        new(view, Akka.Cluster.Cluster.Get(Sys).SelfAddress, TimeSpan.FromMilliseconds(200), isWorker);

    private static CatalogView ViewWith(params CatalogEntry[] entries)
    {
        var view = new CatalogView();
        view.Set(new CatalogState(Snapshot("a", 1, planned: true, entries), received: true, new HashSet<string>()));
        return view;
    }

    private static CatalogEntry Planned(string model, params (int Index, string Node)[] assignments) =>
        new(Model(model), true, []) { Assignments = [.. assignments.Select(a => new ReplicaAssignment(a.Index, a.Node, "cpu:0", Retiring: false))] };

    [Fact]
    public async Task A_replica_goes_to_the_region_of_the_node_its_plan_names()
    {
        var self = Akka.Cluster.Cluster.Get(Sys).SelfAddress.ToString();
        var local = CreateTestProbe().Ref;
        var allocations = ImmutableDictionary<IActorRef, IImmutableList<string>>.Empty.Add(local, ImmutableList<string>.Empty);

        var chosen = await Strategy(ViewWith(Planned("m", (0, self))), _ => true).AllocateShard(local, "m/1.0/0", allocations);

        Assert.Equal(local, chosen);
    }

    [Fact]
    public async Task A_plan_naming_a_member_whose_region_has_not_registered_fails_so_sharding_asks_again()
    {
        var local = CreateTestProbe().Ref;
        var allocations = ImmutableDictionary<IActorRef, IImmutableList<string>>.Empty.Add(local, ImmutableList<string>.Empty);
        var strategy = Strategy(ViewWith(Planned("m", (0, Elsewhere))), address => address == Elsewhere);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => strategy.AllocateShard(local, "m/1.0/0", allocations));
        Assert.Contains("whose shard region has not registered yet", error.Message);
    }

    [Fact]
    public async Task Without_a_plan_or_with_a_node_that_left_the_policy_places_the_replica()
    {
        var self = Akka.Cluster.Cluster.Get(Sys).SelfAddress.ToString();
        var local = CreateTestProbe().Ref;
        var allocations = ImmutableDictionary<IActorRef, IImmutableList<string>>.Empty.Add(local, ImmutableList<string>.Empty);

        Assert.Equal(local, await Strategy(ViewWith(), address => address == self).AllocateShard(local, "unplanned/1.0/0", allocations));
        Assert.Equal(local, await Strategy(ViewWith(Planned("m", (0, Elsewhere))), address => address == self).AllocateShard(local, "m/1.0/0", allocations));
    }

    [Fact]
    public async Task A_gateway_only_region_never_gets_a_replica_even_when_it_is_the_emptiest()
    {
        var gateway = CreateTestProbe().Ref;
        var allocations = ImmutableDictionary<IActorRef, IImmutableList<string>>.Empty.Add(gateway, ImmutableList<string>.Empty);
        var noWorker = Strategy(ViewWith(), _ => false);

        await Assert.ThrowsAsync<InvalidOperationException>(() => noWorker.AllocateShard(gateway, "unplanned/1.0/0", allocations));
    }

    [Fact]
    public async Task Rebalancing_frees_only_the_shards_the_plan_no_longer_has()
    {
        var region = CreateTestProbe().Ref;
        var allocations = ImmutableDictionary<IActorRef, IImmutableList<string>>.Empty
            .Add(region, ImmutableList.Create("m/1.0/0", "m/1.0/1", "gone/1.0/0", "fresh/1.0/0"));
        // m keeps index 0 only; "fresh" has no plan yet (a registry that just took over): nothing of it is freed.
        var view = ViewWith(Planned("m", (0, Elsewhere)), new CatalogEntry(Model("fresh"), true, []));

        var freed = await Strategy(view, _ => true).Rebalance(allocations, ImmutableHashSet<string>.Empty);

        Assert.Equal(["gone/1.0/0", "m/1.0/1"], freed.Order(StringComparer.Ordinal));
    }
}
