using Akka.Actor;
using Akka.TestKit;
using Serve.Actors.Batching;
using Serve.Actors.Models;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tests;

public sealed class ModelActorTests() : ClusterTestKit("model-actor")
{
    private static readonly ReplicaId Replica = new("m", "1.0", 0);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private readonly ControlledBackend _backend = new();

    private static ModelDefinition Definition(int batchSize = 1, int delayMs = 0, int queue = 100) =>
        new("m", "1.0", new TorchScriptSource("m.pt"), BuiltInHandlers.Tensor, 1, batchSize, delayMs, queue, 30, null);

    private static InferenceRequest Request(string id, byte value = 1, TimeSpan? timeout = null, TenantTag? tenant = null) =>
        new(Replica, id, RawInput.FromBody(null, [value]), timeout ?? TimeSpan.FromMinutes(1), tenant ?? TenantTag.Admin);

    private (IActorRef Replica, TestProbe Registry) Start(ModelDefinition definition, RestartBackoff? backoff = null, bool fair = true)
    {
        var registry = CreateTestProbe();
        var settings = new ModelActorSettings(backoff ?? new RestartBackoff(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(40), 3),
            TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1), MaxReplyBytes: 1000)
        {
            FairScheduling = fair,
        };
        var actor = Sys.ActorOf(ModelActor.Props(Replica, _backend, registry.Ref, settings));
        actor.Tell(new EnsureReplica(Replica, definition));
        return (actor, registry);
    }

    /// <summary>A ready replica whose device runs one request, so whatever is sent next queues.</summary>
    private async Task<(IActorRef Replica, ControlledModel Model, PendingBatch Blocker)> StartBusyAsync(ModelDefinition definition, bool fair = true)
    {
        var (actor, _) = Start(definition, fair: fair);
        var model = await _backend.LoadNextAsync();
        actor.Tell(Request("blocker", 0), TestActor);
        return (actor, model, await model.NextBatchAsync());
    }

    private void Send(IActorRef actor, TenantTag tenant, params string[] ids)
    {
        foreach (var id in ids)
        {
            actor.Tell(Request(id, tenant: tenant), TestActor);
        }
    }

    private static async Task SucceedBatchesAsync(ControlledModel model, int count)
    {
        for (var i = 0; i < count; i++)
        {
            (await model.NextBatchAsync()).Succeed();
        }
    }

    private static ReplicaStatus ExpectState(TestProbe registry, ReplicaState state)
    {
        while (true)
        {
            var report = registry.ExpectMsg<ReplicaStatusReport>(Wait);
            if (report.Status.State == state)
            {
                return report.Status;
            }
        }
    }

    [Fact]
    public async Task A_replica_asked_by_a_registry_that_starts_reports_its_state_to_that_registry()
    {
        var (actor, _) = Start(Definition());
        await _backend.LoadNextAsync();
        var starting = CreateTestProbe();

        actor.Tell(ReportNow.Instance, starting.Ref);

        Assert.Equal(Replica, starting.ExpectMsg<ReplicaStatusReport>(Wait).Status.Replica);
    }

    [Fact]
    public async Task Decoding_starts_ahead_for_one_batch_of_queued_requests_and_the_rest_wait_undecoded()
    {
        var (actor, model, blocker) = await StartBusyAsync(Definition(batchSize: 2));
        Send(actor, TenantTag.Admin, [.. Enumerable.Range(0, 10).Select(i => $"r{i}")]);
        // Answered at once, after everything before it in the mailbox.
        actor.Tell(Request("expired", timeout: TimeSpan.Zero), TestActor);
        Assert.Equal("expired", ExpectMsg<InferenceFailed>(Wait).RequestId);

        Assert.Equal(3, model.Prepared.Count); // the blocker, then one batch ahead
        blocker.Succeed();
        var next = await model.NextBatchAsync();
        Assert.Equal(2, next.Inputs.Count);
        AwaitAssert(() => Assert.Equal(5, model.Prepared.Count), Wait);
    }

    [Fact]
    public async Task Loads_its_model_and_reports_each_state_to_the_registry()
    {
        var (_, registry) = Start(Definition());
        Assert.Equal(ReplicaState.Starting, registry.ExpectMsg<ReplicaStatusReport>(Wait).Status.State);
        ExpectState(registry, ReplicaState.Loading);
        var load = await _backend.NextLoadAsync();
        Assert.Equal(Replica, load.Replica);
        load.Completion.SetResult(new ControlledModel());

        var ready = ExpectState(registry, ReplicaState.Ready);
        Assert.Equal("test:0", ready.Device);
        Assert.NotNull(ready.Signature);
    }

    [Fact]
    public async Task Forms_batches_up_to_batch_size_while_the_device_is_busy()
    {
        var (actor, _) = Start(Definition(batchSize: 4, delayMs: 20));
        var model = await _backend.LoadNextAsync();

        actor.Tell(Request("a"), TestActor);
        var first = await model.NextBatchAsync();
        Assert.Single(first.Inputs); // alone after max_batch_delay

        for (var i = 0; i < 6; i++)
        {
            actor.Tell(Request($"b{i}"), TestActor);
        }

        first.Succeed();
        var second = await model.NextBatchAsync();
        Assert.Equal(4, second.Inputs.Count);
        second.Succeed();
        var third = await model.NextBatchAsync();
        Assert.Equal(2, third.Inputs.Count);
        third.Succeed();

        var replies = ReceiveN(7, Wait).Cast<InferenceSucceeded>().ToList();
        Assert.Equal(7, replies.Select(r => r.RequestId).Distinct().Count());
        Assert.Equal(4, replies.Single(r => r.RequestId == "b0").Timing.BatchSize);
    }

    [Fact]
    public async Task A_full_queue_answers_overloaded_at_once()
    {
        var (actor, _) = Start(Definition(queue: 2));
        var model = await _backend.LoadNextAsync();
        actor.Tell(Request("running"), TestActor);
        var running = await model.NextBatchAsync();
        actor.Tell(Request("q1"), TestActor);
        actor.Tell(Request("q2"), TestActor);
        actor.Tell(Request("rejected"), TestActor);

        var rejected = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal("rejected", rejected.RequestId);
        Assert.Equal(ServeErrorKind.Overloaded, rejected.Error.Kind);
        Assert.Contains("job_queue_size", rejected.Error.Message);

        running.Succeed();
        (await model.NextBatchAsync()).Succeed();
        (await model.NextBatchAsync()).Succeed();
        Assert.Equal(["running", "q1", "q2"], ReceiveN(3, Wait).Cast<InferenceReply>().Select(r => r.RequestId).ToArray());
    }

    [Fact]
    public async Task A_load_failure_is_reported_retried_with_backoff_and_ends_in_failed()
    {
        var (actor, registry) = Start(Definition());
        actor.Tell(Request("waiting"), TestActor);
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            (await _backend.NextLoadAsync()).Completion.SetException(new ModelLoadException("/models/m.pt is not a TorchScript file"));
        }

        var queued = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal(ServeErrorKind.Unavailable, queued.Error.Kind);
        Assert.Contains("/models/m.pt is not a TorchScript file", queued.Error.Message);

        var failed = ExpectState(registry, ReplicaState.Failed);
        Assert.Equal(2, failed.Restarts);
        Assert.Contains("not a TorchScript file", failed.LastError);

        actor.Tell(Request("late"), TestActor);
        var late = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal(ServeErrorKind.Unavailable, late.Error.Kind);
        Assert.Contains("not a TorchScript file", late.Error.Message);
    }

    [Fact]
    public async Task A_refused_model_file_is_not_retried_until_the_definition_changes()
    {
        var (actor, registry) = Start(Definition());
        actor.Tell(Request("waiting"), TestActor);
        (await _backend.NextLoadAsync()).Completion.SetException(new ModelLoadException("m.pt is refused: libtorch aborted", rejected: true));

        Assert.Contains("m.pt is refused: libtorch aborted", ExpectMsg<InferenceFailed>(Wait).Error.Message);
        var rejected = ExpectState(registry, ReplicaState.Rejected);
        Assert.Equal(0, rejected.Restarts);
        Assert.Equal("model file refused: m.pt is refused: libtorch aborted", rejected.LastError);
        Assert.False(_backend.Loads.Reader.TryRead(out _), "no second load of a refused file");

        // A new definition (another file) loads again.
        actor.Tell(new EnsureReplica(Replica, Definition() with { Source = new TorchScriptSource("fixed.pt") }));
        Assert.Equal("fixed.pt", ((TorchScriptSource)(await _backend.NextLoadAsync()).Definition.Source).Path);
    }

    [Fact]
    public async Task A_crash_while_running_fails_the_batch_with_its_cause_and_reloads_the_model()
    {
        var (actor, registry) = Start(Definition());
        var model = await _backend.LoadNextAsync();
        actor.Tell(Request("doomed"), TestActor);
        (await model.NextBatchAsync()).Completion.SetException(new ModelExecutionException("CUDA error: too many resources requested for launch"));

        var failed = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal(ServeErrorKind.ModelFailed, failed.Error.Kind);
        Assert.Contains("too many resources", failed.Error.Message);
        ExpectState(registry, ReplicaState.Restarting);

        var reloaded = await _backend.LoadNextAsync();
        ExpectState(registry, ReplicaState.Ready);
        Assert.Single(model.Disposed);
        actor.Tell(Request("after"), TestActor);
        (await reloaded.NextBatchAsync()).Succeed();
        Assert.Equal("after", ExpectMsg<InferenceSucceeded>(Wait).RequestId);
    }

    [Fact]
    public async Task A_device_broken_for_the_process_fails_the_replica_for_good_and_asks_for_a_new_process()
    {
        var poisoned = CreateTestProbe();
        Sys.EventStream.Subscribe(poisoned.Ref, typeof(ProcessPoisoned));
        var (actor, registry) = Start(Definition());
        var model = await _backend.LoadNextAsync();
        actor.Tell(Request("doomed"), TestActor);
        (await model.NextBatchAsync()).Completion.SetException(new DeviceFaultException("cuda:0", "CUDA error: device-side assert triggered"));

        Assert.Contains("device-side assert", ExpectMsg<InferenceFailed>(Wait).Error.Message);
        var failed = ExpectState(registry, ReplicaState.Failed);
        Assert.Contains("the worker process restarts", failed.LastError);
        Assert.Equal(Replica, poisoned.ExpectMsg<ProcessPoisoned>(Wait).Replica);
        Assert.Single(model.Disposed);

        // Not reloaded in place: the device would fail again until the process is new.
        actor.Tell(Request("after"), TestActor);
        Assert.Equal(ServeErrorKind.Unavailable, ExpectMsg<InferenceFailed>(Wait).Error.Kind);
        Assert.False(_backend.Loads.Reader.TryRead(out _), "no reload on a broken device");
    }

    [Fact]
    public async Task An_answer_too_large_to_cross_nodes_becomes_an_error_instead_of_silence()
    {
        var (actor, _) = Start(Definition());
        var model = await _backend.LoadNextAsync();
        actor.Tell(Request("huge"), TestActor);
        (await model.NextBatchAsync()).Completion.SetResult(new BatchResult(
            [new InferenceOutcome.Success(new DocumentOutput("application/octet-stream", new byte[1001]))], TimeSpan.Zero));

        var failed = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal(ServeErrorKind.ResourceExhausted, failed.Error.Kind);
        Assert.Contains("MaximumFrameSizeBytes", failed.Error.Message);
    }

    [Fact]
    public async Task A_bad_input_fails_only_its_own_request()
    {
        var (actor, _) = Start(Definition(batchSize: 2, delayMs: 1000));
        var model = await _backend.LoadNextAsync();
        actor.Tell(Request("good"), TestActor);
        actor.Tell(Request("bad"), TestActor);
        var batch = await model.NextBatchAsync();
        batch.Completion.SetResult(new BatchResult(
        [
            new InferenceOutcome.Success(new DocumentOutput("text/plain", [1])),
            new InferenceOutcome.Failure(new ServeError(ServeErrorKind.BadInput, "wrong shape")),
        ], TimeSpan.Zero));

        var replies = ReceiveN(2, Wait).Cast<InferenceReply>().ToDictionary(r => r.RequestId);
        Assert.IsType<InferenceSucceeded>(replies["good"]);
        Assert.Equal(ServeErrorKind.BadInput, Assert.IsType<InferenceFailed>(replies["bad"]).Error.Kind);
    }

    [Fact]
    public async Task Requests_whose_deadline_passed_never_reach_the_device()
    {
        var (actor, _) = Start(Definition());
        var model = await _backend.LoadNextAsync();
        actor.Tell(Request("blocker"), TestActor);
        var blocker = await model.NextBatchAsync();

        actor.Tell(Request("past", timeout: TimeSpan.Zero), TestActor);
        Assert.Equal(ServeErrorKind.DeadlineExceeded, ExpectMsg<InferenceFailed>(Wait).Error.Kind);

        var expiresAt = DateTime.UtcNow.AddMilliseconds(100);
        actor.Tell(Request("expires", timeout: TimeSpan.FromMilliseconds(100)), TestActor);
        actor.Tell(Request("fine"), TestActor);
        await Waiting.UntilAsync(() => DateTime.UtcNow > expiresAt, Wait, "the queued request's deadline to pass");
        blocker.Succeed();

        var next = await model.NextBatchAsync();
        Assert.Single(next.Inputs);
        next.Succeed();
        var replies = ReceiveN(3, Wait).Cast<InferenceReply>().ToDictionary(r => r.RequestId);
        Assert.Equal(ServeErrorKind.DeadlineExceeded, Assert.IsType<InferenceFailed>(replies["expires"]).Error.Kind);
        Assert.IsType<InferenceSucceeded>(replies["fine"]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_flooding_tenant_gets_its_share_and_another_tenant_is_served_in_the_next_rounds(bool fair)
    {
        var flooder = new TenantTag("flooder", 1, 0);
        var modest = new TenantTag("modest", 1, 0);
        var (actor, model, blocker) = await StartBusyAsync(Definition(), fair);
        for (var i = 1; i <= 10; i++)
        {
            actor.Tell(Request($"f{i}", (byte)i, tenant: flooder), TestActor);
        }

        actor.Tell(Request("m1", 101, tenant: modest), TestActor);
        actor.Tell(Request("m2", 102, tenant: modest), TestActor);
        blocker.Succeed();

        var served = new List<byte>();
        for (var i = 0; i < 12; i++)
        {
            var batch = await model.NextBatchAsync();
            served.Add(((RawInput)Assert.Single(batch.Inputs)).Parts[0].Data[0]);
            batch.Succeed();
        }

        Assert.All(ReceiveN(13, Wait), reply => Assert.IsType<InferenceSucceeded>(reply));
        byte[] expected = fair
            ? [1, 101, 2, 102, 3, 4, 5, 6, 7, 8, 9, 10] // turn about while both wait, then the flooder alone
            : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 101, 102]; // Serve:Node:FairScheduling=false: one FIFO queue
        Assert.Equal(expected, served);
    }

    [Fact]
    public async Task A_batch_mixes_tenants_in_proportion_to_their_weights()
    {
        var heavy = new TenantTag("heavy", 3, 0);
        var light = new TenantTag("light", 1, 0);
        var (actor, _) = Start(Definition(batchSize: 4, delayMs: 1000));
        var model = await _backend.LoadNextAsync();
        for (var i = 0; i < 4; i++)
        {
            actor.Tell(Request($"l{i}", 100, tenant: light), TestActor);
        }

        var first = await model.NextBatchAsync(); // four of light's: nobody else waits
        for (var i = 0; i < 8; i++)
        {
            actor.Tell(Request($"h{i}", 1, tenant: heavy), TestActor);
            actor.Tell(Request($"l{4 + i}", 100, tenant: light), TestActor);
        }

        first.Succeed();
        var second = await model.NextBatchAsync();
        byte[] threeHeavyOneLight = [1, 1, 1, 100];
        Assert.Equal(threeHeavyOneLight, second.Inputs.Select(i => ((RawInput)i).Parts[0].Data[0]));
        second.Succeed();
    }

    [Fact]
    public async Task A_tenant_at_its_queue_limit_is_refused_with_quota_exceeded_while_others_are_admitted()
    {
        var (actor, model, blocker) = await StartBusyAsync(Definition());
        Send(actor, new TenantTag("limited", 1, 2), "l1", "l2", "l3");

        var refused = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal("l3", refused.RequestId);
        Assert.Equal(ServeErrorKind.QuotaExceeded, refused.Error.Kind);
        Assert.Equal("Tenant \"limited\" has 2 requests queued for model \"m\" version 1.0 (its queue limit); try again later",
            refused.Error.Message);

        Send(actor, new TenantTag("other", 1, 2), "other");
        blocker.Succeed();
        await SucceedBatchesAsync(model, 3);

        var replies = ReceiveN(4, Wait).Cast<InferenceReply>().ToDictionary(r => r.RequestId);
        Assert.All(replies.Values, reply => Assert.IsType<InferenceSucceeded>(reply));
        Assert.Equal(["blocker", "l1", "l2", "other"], replies.Keys.Order());
    }

    [Fact]
    public async Task A_full_queue_refuses_the_newest_request_of_the_tenant_over_its_share_to_admit_another()
    {
        var other = new TenantTag("other", 1, 0);
        var (actor, model, blocker) = await StartBusyAsync(Definition(queue: 3));
        Send(actor, new TenantTag("flooder", 1, 0), "f1", "f2", "f3");
        Send(actor, other, "o1");

        var pushedOut = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal("f3", pushedOut.RequestId);
        Assert.Equal(ServeErrorKind.QuotaExceeded, pushedOut.Error.Kind);
        Assert.Contains("Tenant \"flooder\" has 3 requests queued", pushedOut.Error.Message);
        Assert.Contains("more than its share of the full queue", pushedOut.Error.Message);

        // Now each holds its share (2 and 1 of 3, with equal weights): nobody is pushed out any more.
        Send(actor, other, "o2");
        var full = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal(("o2", ServeErrorKind.Overloaded), (full.RequestId, full.Error.Kind));

        blocker.Succeed();
        await SucceedBatchesAsync(model, 3);

        Assert.Equal(["blocker", "f1", "o1", "f2"], ReceiveN(4, Wait).Cast<InferenceSucceeded>().Select(r => r.RequestId).ToArray());
    }

    [Fact]
    public async Task A_cancelled_request_leaves_the_queue_and_never_runs()
    {
        var (actor, _) = Start(Definition());
        var model = await _backend.LoadNextAsync();
        actor.Tell(Request("blocker"), TestActor);
        var blocker = await model.NextBatchAsync();
        actor.Tell(Request("cancelled"), TestActor);
        actor.Tell(Request("kept"), TestActor);
        actor.Tell(new CancelInference(Replica, "cancelled"));

        var cancelled = ExpectMsg<InferenceFailed>(Wait);
        Assert.Equal("cancelled", cancelled.RequestId);
        Assert.Equal(ServeErrorKind.Cancelled, cancelled.Error.Kind);

        blocker.Succeed();
        var next = await model.NextBatchAsync();
        next.Succeed();
        Assert.Single(next.Inputs);
        Assert.Equal(["blocker", "kept"], ReceiveN(2, Wait).Cast<InferenceReply>().Select(r => r.RequestId).Order().ToArray());
    }

    [Fact]
    public async Task Hand_off_finishes_the_running_batch_and_fails_the_queue_clearly()
    {
        var (actor, _) = Start(Definition());
        var model = await _backend.LoadNextAsync();
        Watch(actor);
        actor.Tell(Request("running"), TestActor);
        var running = await model.NextBatchAsync();
        actor.Tell(Request("queued"), TestActor);
        actor.Tell(HandOff.Instance);
        running.Succeed();

        var replies = ReceiveN(2, Wait).OfType<InferenceReply>().ToDictionary(r => r.RequestId);
        Assert.IsType<InferenceSucceeded>(replies["running"]);
        var queued = Assert.IsType<InferenceFailed>(replies["queued"]);
        Assert.Equal(ServeErrorKind.Unavailable, queued.Error.Kind);
        ExpectTerminated(actor, Wait);
        Assert.Single(model.Disposed);
    }
}
