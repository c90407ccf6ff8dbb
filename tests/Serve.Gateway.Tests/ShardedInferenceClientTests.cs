using Akka.Actor;
using Akka.Hosting;
using Akka.TestKit;
using Microsoft.Extensions.Options;
using Serve.Actors.Hosting;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Inference;

namespace Serve.Gateway.Tests;

/// <summary>
/// How the gateway reaches replicas, against test probes standing in for the shard region and for replicas
/// in this process: which replica is asked and how, retries, deadlines, cancellation and the frame limit.
/// </summary>
public sealed class ShardedInferenceClientTests : Akka.Hosting.TestKit.TestKit
{
    private const string NodeA = "akka.tcp://serve@10.0.0.1:4054";
    private const string NodeB = "akka.tcp://serve@10.0.0.2:4054";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private TestProbe? _shards;
    private readonly CatalogView _catalog = new();
    private readonly LocalReplicas _local = new();

    public ShardedInferenceClientTests() : base("sharded-client")
    {
    }

    // The actor system starts after construction, so the probe is made on first use.
    private TestProbe Shards => _shards ??= CreateTestProbe();

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider)
    {
    }

    private ShardedInferenceClient Client(long maxPayloadBytes = 1_000) => new(
        new Region(Shards.Ref), _catalog, _local, TimeProvider.System,
        Options.Create(new ServeClusterOptions { MaximumFrameSizeBytes = maxPayloadBytes + ServeClusterOptions.FrameOverheadBytes }));

    private static CatalogEntry Model(params (int Index, string Node, ReplicaState State)[] replicas)
    {
        var definition = new ModelDefinition("m", "1.0", new TorchScriptSource("m.pt"), BuiltInHandlers.Tensor, replicas.Length, 1, 0, 100, 30, null);
        return new CatalogEntry(definition, true,
            [.. replicas.Select(r => new ReplicaStatus(new ReplicaId("m", "1.0", r.Index), r.State, r.Node, "cpu:0", null, 0, null, DateTime.UnixEpoch))])
        {
            Assignments = [.. replicas.Select(r => new ReplicaAssignment(r.Index, r.Node, "cpu:0", Retiring: false))],
        };
    }

    private CatalogEntry Publish(CatalogEntry entry)
    {
        _catalog.Set(new CatalogState(new CatalogSnapshot("test", 1, [entry]) { Planned = true }, received: true, new HashSet<string>()));
        return entry;
    }

    private static InferenceInput Input(int bytes = 4) => RawInput.FromBody(null, new byte[bytes]);

    private static InferenceSucceeded Answer(InferenceRequest request) =>
        new(request.RequestId, new DocumentOutput("application/json", "[1]"u8.ToArray()), new InferenceTiming(0, 0, 1, request.Replica.EntityId, "cpu:0"));

    [Fact]
    public async Task A_ready_replica_is_asked_through_the_region_with_the_tenant_and_its_answer_comes_back()
    {
        var model = Publish(Model((0, NodeA, ReplicaState.Ready)));
        var tenant = new TenantTag("alice", 2, 5);

        var reply = Client().InferAsync(model, Input(), tenant, null, TestContext.Current.CancellationToken);
        var request = Shards.ExpectMsg<InferenceRequest>(Wait);
        Shards.Reply(Answer(request));

        Assert.IsType<InferenceSucceeded>(await reply);
        Assert.Equal(new ReplicaId("m", "1.0", 0), request.Replica);
        Assert.Equal(tenant, request.Tenant);
        Assert.InRange(request.Timeout, TimeSpan.FromSeconds(29), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_replica_that_cannot_take_the_request_gets_it_retried_once_on_another()
    {
        var model = Publish(Model((0, NodeA, ReplicaState.Ready), (1, NodeB, ReplicaState.Ready)));

        var reply = Client().InferAsync(model, Input(), TenantTag.Admin, null, TestContext.Current.CancellationToken);
        var first = Shards.ExpectMsg<InferenceRequest>(Wait);
        Shards.Reply(new InferenceFailed(first.RequestId, new ServeError(ServeErrorKind.Unavailable, "restarting")));
        var second = Shards.ExpectMsg<InferenceRequest>(Wait);
        Shards.Reply(Answer(second));

        Assert.IsType<InferenceSucceeded>(await reply);
        Assert.NotEqual(first.Replica, second.Replica);
        Assert.Equal(first.RequestId, second.RequestId);
    }

    [Fact]
    public async Task A_bad_input_answer_is_not_retried()
    {
        var model = Publish(Model((0, NodeA, ReplicaState.Ready), (1, NodeB, ReplicaState.Ready)));

        var reply = Client().InferAsync(model, Input(), TenantTag.Admin, null, TestContext.Current.CancellationToken);
        var request = Shards.ExpectMsg<InferenceRequest>(Wait);
        Shards.Reply(new InferenceFailed(request.RequestId, new ServeError(ServeErrorKind.BadInput, "no")));

        Assert.Equal(ServeErrorKind.BadInput, Assert.IsType<InferenceFailed>(await reply).Error.Kind);
        Shards.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public async Task A_replica_that_does_not_answer_by_the_clients_deadline_is_told_to_drop_the_request()
    {
        var model = Publish(Model((0, NodeA, ReplicaState.Ready)));
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(300);

        var reply = Client().InferAsync(model, Input(), TenantTag.Admin, deadline, TestContext.Current.CancellationToken);
        var request = Shards.ExpectMsg<InferenceRequest>(Wait);

        Assert.True(request.Timeout <= TimeSpan.FromMilliseconds(300));
        Assert.Equal(ServeErrorKind.DeadlineExceeded, Assert.IsType<InferenceFailed>(await reply).Error.Kind);
        Assert.Equal(request.RequestId, Shards.ExpectMsg<CancelInference>(Wait).RequestId);
    }

    [Fact]
    public async Task A_caller_that_gives_up_is_answered_cancelled_and_the_replica_drops_the_request()
    {
        var model = Publish(Model((0, NodeA, ReplicaState.Ready)));
        using var caller = new CancellationTokenSource();

        var reply = Client().InferAsync(model, Input(), TenantTag.Admin, null, caller.Token);
        var request = Shards.ExpectMsg<InferenceRequest>(Wait);
        await caller.CancelAsync();

        Assert.Equal(ServeErrorKind.Cancelled, Assert.IsType<InferenceFailed>(await reply).Error.Kind);
        Assert.Equal(request.RequestId, Shards.ExpectMsg<CancelInference>(Wait).RequestId);
    }

    [Fact]
    public async Task A_payload_too_large_for_a_frame_is_refused_before_anything_is_sent_but_a_local_replica_takes_it()
    {
        var model = Publish(Model((0, NodeA, ReplicaState.Ready)));

        var refused = await Client(maxPayloadBytes: 100).InferAsync(model, Input(bytes: 101), TenantTag.Admin, null, TestContext.Current.CancellationToken);

        Assert.Equal(ServeErrorKind.PayloadTooLarge, Assert.IsType<InferenceFailed>(refused).Error.Kind);
        Shards.ExpectNoMsg(TimeSpan.FromMilliseconds(200));

        var replica = CreateTestProbe();
        _local.Add(new ReplicaId("m", "1.0", 0), replica.Ref);
        var reply = Client(maxPayloadBytes: 100).InferAsync(model, Input(bytes: 101), TenantTag.Admin, null, TestContext.Current.CancellationToken);
        replica.Reply(Answer(replica.ExpectMsg<InferenceRequest>(Wait)));
        Assert.IsType<InferenceSucceeded>(await reply);
        Shards.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public async Task A_local_replica_that_stops_while_asked_has_the_request_retried_on_another_at_once()
    {
        var model = Publish(Model((0, NodeA, ReplicaState.Ready), (1, NodeB, ReplicaState.Ready)));
        var local = CreateTestProbe();
        var replica0 = new ReplicaId("m", "1.0", 0);
        var replica1 = new ReplicaId("m", "1.0", 1);
        _local.Add(replica0, local.Ref);
        _local.Add(replica1, local.Ref);

        var reply = Client().InferAsync(model, Input(), TenantTag.Admin, null, TestContext.Current.CancellationToken);
        var first = local.ExpectMsg<InferenceRequest>(Wait);
        _local.Remove(first.Replica, local.Ref);
        var second = local.ExpectMsg<InferenceRequest>(Wait);
        local.Reply(Answer(second));

        Assert.IsType<InferenceSucceeded>(await reply);
        Assert.NotEqual(first.Replica, second.Replica);
    }

    private sealed class Region(IActorRef region) : IRequiredActor<ModelReplicaRegion>
    {
        public IActorRef ActorRef => region;

        public Task<IActorRef> GetAsync(CancellationToken cancellationToken = default) => Task.FromResult(region);
    }
}
