using Akka.Actor;
using Serve.Actors.Batching;
using Serve.Actors.Models;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tests;

/// <summary>The replica's queue and admission as a plain object: no actor system, a manual clock.</summary>
public sealed class ReplicaQueueTests
{
    private static readonly ReplicaId Replica = new("m", "1.0", 0);
    private static readonly TenantTag Alice = new("alice", 1, 2);
    private static readonly TenantTag Bob = new("bob", 1, 0);

    private readonly ManualTime _time = new();
    private readonly ReplicaQueue _queue;

    public ReplicaQueueTests() => _queue = new ReplicaQueue(Replica, fair: true, _time);

    private static InferenceRequest Request(string id, TenantTag? tenant = null, TimeSpan? timeout = null) =>
        new(Replica, id, RawInput.FromBody(null, [1]), timeout ?? TimeSpan.FromSeconds(10), tenant ?? TenantTag.Admin);

    private Admission Admit(string id, TenantTag? tenant = null, TimeSpan? timeout = null, int capacity = 10) =>
        _queue.Admit(Request(id, tenant, timeout), ActorRefs.Nobody, capacity);

    private static string[] Ids(IEnumerable<QueuedRequest> requests) => requests.Select(r => r.Request.RequestId).ToArray();

    [Fact]
    public void A_full_queue_refuses_the_newcomer_as_overloaded_naming_job_queue_size()
    {
        Admit("a", capacity: 2);
        Admit("b", capacity: 2);

        var refused = Admit("c", capacity: 2);

        Assert.Equal(ServeErrorKind.Overloaded, refused.Refusal?.Kind);
        Assert.Contains("job_queue_size", refused.Refusal?.Message, StringComparison.Ordinal);
        Assert.Equal(2, _queue.Count);
    }

    [Fact]
    public void A_tenant_at_its_queue_limit_is_refused_as_quota_exceeded_while_another_is_admitted()
    {
        Admit("a1", Alice);
        Admit("a2", Alice);

        var refused = Admit("a3", Alice);
        var other = Admit("b1", Bob);

        Assert.Equal(ServeErrorKind.QuotaExceeded, refused.Refusal?.Kind);
        Assert.Contains("\"alice\" has 2 requests queued", refused.Refusal?.Message, StringComparison.Ordinal);
        Assert.Null(other.Refusal);
        Assert.Equal(3, _queue.Count);
    }

    [Fact]
    public void A_request_without_time_left_is_refused_as_deadline_exceeded()
    {
        var refused = Admit("late", timeout: TimeSpan.Zero);

        Assert.Equal(ServeErrorKind.DeadlineExceeded, refused.Refusal?.Kind);
        Assert.Equal(0, _queue.Count);
    }

    [Fact]
    public void A_full_queue_pushes_out_the_newest_request_of_the_tenant_over_its_share()
    {
        var flooder = new TenantTag("flooder", 1, 0);
        Admit("f1", flooder, capacity: 3);
        Admit("f2", flooder, capacity: 3);
        Admit("f3", flooder, capacity: 3);

        var admitted = Admit("b1", Bob, capacity: 3);

        Assert.Null(admitted.Refusal);
        Assert.Equal("f3", admitted.PushedOut?.Request.Request.RequestId);
        Assert.Equal(ServeErrorKind.QuotaExceeded, admitted.PushedOut?.Error.Kind);
        Assert.Equal(["b1", "f1", "f2"], Ids(_queue.Items).Order().ToArray());
    }

    [Fact]
    public void Batches_are_taken_in_fair_order_and_expired_requests_are_set_aside()
    {
        Admit("short", Bob, timeout: TimeSpan.FromSeconds(1));
        Admit("a1", Alice);
        Admit("b1", Bob);
        _time.Advance(TimeSpan.FromSeconds(2));

        var taken = _queue.Take(2);

        Assert.Equal(["a1", "b1"], Ids(taken.Requests));
        var expired = Assert.Single(taken.Expired);
        Assert.Equal("short", expired.Request.Request.RequestId);
        Assert.Equal(ServeErrorKind.DeadlineExceeded, expired.Error.Kind);
        Assert.Equal(0, _queue.Count);
    }

    [Fact]
    public void The_batch_delay_counts_from_the_oldest_request()
    {
        Admit("a");
        _time.Advance(TimeSpan.FromMilliseconds(30));
        Admit("b");

        var decision = _queue.Decide(deviceBusy: false, batchSize: 4, maxDelay: TimeSpan.FromMilliseconds(50));
        Assert.Equal(BatchDecision.WaitFor(TimeSpan.FromMilliseconds(20)), decision);

        _time.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Equal(BatchDecision.DispatchNow(2), _queue.Decide(deviceBusy: false, batchSize: 4, maxDelay: TimeSpan.FromMilliseconds(50)));
        Assert.Equal(BatchDecision.Idle, _queue.Decide(deviceBusy: true, batchSize: 4, maxDelay: TimeSpan.FromMilliseconds(50)));
    }

    [Fact]
    public void Only_one_batch_is_decoded_ahead_and_a_taken_request_makes_room_for_the_next()
    {
        var prepared = new List<InferenceInput>();
        foreach (var id in new[] { "a", "b", "c" })
        {
            Admit(id);
        }

        _queue.PrepareAhead(batchSize: 2, input => { prepared.Add(input); return new Decoded(); });
        Assert.Equal(2, prepared.Count);
        Assert.Equal(2, _queue.PreparedAheadCount);

        _queue.Take(1);
        _queue.PrepareAhead(batchSize: 2, input => { prepared.Add(input); return new Decoded(); });
        Assert.Equal(3, prepared.Count);
        Assert.Equal(2, _queue.PreparedAheadCount);
    }

    [Fact]
    public void Cancelling_removes_only_a_queued_request_and_a_repeated_id_keeps_the_newer_one()
    {
        Admit("same");
        var first = _queue.Take(1).Requests.Single();
        Admit("same");

        var cancelled = _queue.Cancel("same");

        Assert.NotNull(cancelled);
        Assert.NotSame(first, cancelled);
        Assert.Null(_queue.Cancel("same"));
        Assert.Null(_queue.Cancel("unknown"));
        Assert.Equal(0, _queue.Count);
    }

    [Fact]
    public void Draining_answers_every_queued_request_with_the_given_error()
    {
        Admit("a", Alice);
        Admit("b", Bob);
        var error = ServeErrors.ReplicaStopped(Replica);

        var refused = _queue.Drain(error);

        Assert.Equal(["a", "b"], Ids(refused.Select(r => r.Request)).Order().ToArray());
        Assert.All(refused, r => Assert.Same(error, r.Error));
        Assert.Equal(0, _queue.Count);
        Assert.Null(_queue.Cancel("a"));
    }

    private sealed class Decoded : IPreparedInput;
}
