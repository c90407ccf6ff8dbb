using Akka.Actor;
using Akka.Cluster;
using Serve.Actors.Hosting;
using Serve.Actors.Models;
using Serve.Actors.Placement;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Actors.Tests;

/// <summary>
/// A registry that starts (after a gateway failover) asks every worker for its inventory and its replicas'
/// states at once, and the worker answers straight to it: nothing waits for the next report interval or
/// for a proxy to find the new singleton. This node is a gateway and a worker, so it is its own worker.
/// </summary>
public sealed class ReportNowTests() : ClusterTestKit("report-now")
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public void A_registry_that_starts_asks_each_worker_up_for_its_inventory()
    {
        AwaitCondition(() => Cluster.Get(Sys).SelfMember.Status == MemberStatus.Up, Wait);
        var reporter = CreateTestProbe();
        Sys.ActorOf(Props.Create(() => new Forwarder(reporter.Ref)), InventoryReporter.ActorName);

        Sys.ActorOf(ModelRegistryActor.Props(CreateTestProbe().Ref, RegistrySettings.Default));

        reporter.ExpectMsg<ReportNow>(Wait);
    }

    [Fact]
    public void A_worker_asked_answers_with_its_inventory_and_each_replica_reports_to_the_asker()
    {
        AwaitCondition(() => Cluster.Get(Sys).SelfMember.Status == MemberStatus.Up, Wait);
        var replicas = new LocalReplicas();
        var replica = CreateTestProbe();
        Assert.True(ReplicaId.TryParse("m/1.0/0", out var id));
        replicas.Add(id, replica.Ref);
        var reporter = Sys.ActorOf(InventoryReporter.Props(
            () => null, () => [new DeviceCapacity("cpu:0", 1_000, -1)], () => [new HostedReplica(id, "cpu:0")], "w", replicas));

        var registry = CreateTestProbe();
        reporter.Tell(ReportNow.Instance, registry.Ref);

        var inventory = registry.ExpectMsg<NodeInventory>(Wait);
        Assert.Equal("w", inventory.Name);
        Assert.Equal(id, inventory.Hosted.Single().Replica);
        replica.ExpectMsg<ReportNow>(Wait);
        Assert.Equal(registry.Ref, replica.LastSender);
    }

    private sealed class Forwarder : ReceiveActor
    {
        public Forwarder(IActorRef to) => ReceiveAny(message => to.Forward(message));
    }
}
