using Serve.Actors.Batching;
using Serve.Actors.Placement;

namespace Serve.Actors.Tests;

public sealed class BatchingPolicyTests
{
    private static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(100);

    [Fact]
    public void Nothing_to_do_when_the_queue_is_empty() =>
        Assert.Equal(BatchAction.Idle, BatchingPolicy.Decide(0, TimeSpan.Zero, deviceBusy: false, 8, Delay).Action);

    [Fact]
    public void Nothing_is_dispatched_while_the_device_runs_a_batch() =>
        Assert.Equal(BatchAction.Idle, BatchingPolicy.Decide(50, TimeSpan.FromSeconds(5), deviceBusy: true, 8, Delay).Action);

    [Fact]
    public void A_full_batch_goes_at_once()
    {
        var decision = BatchingPolicy.Decide(20, TimeSpan.Zero, deviceBusy: false, 8, Delay);
        Assert.Equal(BatchAction.Dispatch, decision.Action);
        Assert.Equal(8, decision.Count);
    }

    [Fact]
    public void Batch_size_one_never_waits()
    {
        var decision = BatchingPolicy.Decide(1, TimeSpan.Zero, deviceBusy: false, 1, Delay);
        Assert.Equal(new BatchDecision(BatchAction.Dispatch, 1, TimeSpan.Zero), decision);
    }

    [Fact]
    public void A_partial_batch_waits_for_the_rest_of_the_delay()
    {
        var decision = BatchingPolicy.Decide(3, TimeSpan.FromMilliseconds(30), deviceBusy: false, 8, Delay);
        Assert.Equal(BatchAction.Wait, decision.Action);
        Assert.Equal(TimeSpan.FromMilliseconds(70), decision.Wait);
    }

    [Fact]
    public void A_partial_batch_goes_once_its_oldest_request_has_waited_the_delay()
    {
        var decision = BatchingPolicy.Decide(3, TimeSpan.FromMilliseconds(100), deviceBusy: false, 8, Delay);
        Assert.Equal(new BatchDecision(BatchAction.Dispatch, 3, TimeSpan.Zero), decision);
    }

    [Fact]
    public void A_zero_delay_dispatches_whatever_is_queued() =>
        Assert.Equal(2, BatchingPolicy.Decide(2, TimeSpan.Zero, deviceBusy: false, 8, TimeSpan.Zero).Count);
}

public sealed class FairQueueTests
{
    private const int Capacity = 1_000;

    private static Job Add(FairQueue<Job> queue, string tenant, int number, int weight = 1, int limit = 0, int capacity = Capacity)
    {
        var admission = queue.Admit(tenant, weight, limit, capacity);
        Assert.True(admission == new Admission<Job>(AdmissionOutcome.Admitted, null),
            $"{tenant}{number} should join a queue of {queue.Count} without pushing anything out, but got {admission}");
        var job = new Job(tenant, number);
        queue.Enqueue(tenant, weight, job);
        return job;
    }

    private static void Fill(FairQueue<Job> queue, string tenant, int count, int weight = 1)
    {
        for (var i = 0; i < count; i++)
        {
            Add(queue, tenant, i, weight);
        }
    }

    private static string Tenants(IEnumerable<Job> jobs) => string.Concat(jobs.Select(j => j.Tenant));

    [Fact]
    public void Backlogged_tenants_are_served_in_proportion_to_their_weights()
    {
        var queue = new FairQueue<Job>();
        var weights = new Dictionary<string, int> { ["a"] = 3, ["b"] = 1 };
        var served = new Dictionary<string, int> { ["a"] = 0, ["b"] = 0 };
        for (var i = 0; i < 10; i++)
        {
            Add(queue, "a", i, weights["a"]);
            Add(queue, "b", i, weights["b"]);
        }

        for (var i = 0; i < 10_000; i++)
        {
            Assert.True(queue.TryDequeue(out var job));
            served[job.Tenant]++;
            Add(queue, job.Tenant, 10 + i, weights[job.Tenant]); // both stay backlogged throughout
        }

        Assert.InRange(served["a"] / 10_000.0, 0.73, 0.77);
        Assert.InRange(served["b"] / 10_000.0, 0.23, 0.27);
    }

    [Fact]
    public void An_idle_tenant_s_share_goes_to_the_tenants_still_waiting()
    {
        var queue = new FairQueue<Job>();
        Fill(queue, "a", 20, weight: 1);
        Fill(queue, "b", 3, weight: 3);

        // b's weight gives it 3 of every 4 only while it has work; then a gets every slot.
        Assert.Equal("abbbaaaaaaaa", Tenants(queue.Dequeue(12)));
    }

    [Fact]
    public void A_tenant_that_was_idle_gets_no_burst_from_the_rounds_it_missed()
    {
        var queue = new FairQueue<Job>();
        Fill(queue, "a", 100);
        Add(queue, "b", 0);
        Assert.Equal("ab", Tenants(queue.Dequeue(2)));
        Assert.Equal(new string('a', 50), Tenants(queue.Dequeue(50))); // b idle: a takes everything

        Fill(queue, "b", 20);
        Assert.Equal(string.Concat(Enumerable.Repeat("ba", 10)), Tenants(queue.Dequeue(20)));
    }

    [Fact]
    public void A_batch_mixes_tenants_and_each_tenant_stays_in_order()
    {
        var queue = new FairQueue<Job>();
        for (var i = 0; i < 10; i++)
        {
            Add(queue, "a", i, weight: 2);
            Add(queue, "b", i, weight: 1);
        }

        Assert.Equal("aab", Tenants(queue.Dequeue(3)));
        var rest = queue.Dequeue(100);
        Assert.Equal(Enumerable.Range(2, 8), rest.Where(j => j.Tenant == "a").Select(j => j.Number));
        Assert.Equal(Enumerable.Range(1, 9), rest.Where(j => j.Tenant == "b").Select(j => j.Number));
    }

    [Fact]
    public void A_weight_below_one_counts_as_one()
    {
        var queue = new FairQueue<Job>();
        Fill(queue, "a", 4, weight: 0);
        Fill(queue, "b", 4, weight: -5);
        Assert.Equal("abababab", Tenants(queue.Dequeue(8)));
    }

    [Fact]
    public void A_tenant_at_its_limit_is_refused_while_others_are_admitted()
    {
        var queue = new FairQueue<Job>();
        Add(queue, "a", 0, limit: 2);
        Add(queue, "a", 1, limit: 2);
        Assert.Equal(AdmissionOutcome.TenantFull, queue.Admit("a", 1, 2, Capacity).Outcome);
        Add(queue, "b", 0, limit: 2);

        Assert.Equal("a", Tenants(queue.Dequeue(1)));
        Assert.Equal(1, queue.CountOf("a"));
        Add(queue, "a", 2, limit: 2);
    }

    [Fact]
    public void A_tenant_alone_may_fill_the_whole_queue_but_not_more()
    {
        var queue = new FairQueue<Job>();
        Fill(queue, "a", 8);
        Assert.Equal(new Admission<Job>(AdmissionOutcome.QueueFull, null), queue.Admit("a", 1, 0, 8));
        Assert.Equal(AdmissionOutcome.TenantFull, queue.Admit("a", 1, 8, 8).Outcome);
    }

    [Fact]
    public void A_full_queue_makes_room_for_others_up_to_their_weighted_share()
    {
        var queue = new FairQueue<Job>();
        for (var i = 0; i < 8; i++)
        {
            Add(queue, "a", i, weight: 3, capacity: 8);
        }

        var pushedOut = new List<int>();
        for (var b = 0; ; b++)
        {
            var admission = queue.Admit("b", 1, 0, 8);
            if (admission.Outcome != AdmissionOutcome.Admitted)
            {
                Assert.Equal(AdmissionOutcome.QueueFull, admission.Outcome);
                break;
            }

            Assert.NotNull(admission.PushOut);
            Assert.True(queue.Remove(admission.PushOut));
            pushedOut.Add(admission.PushOut.Number);
            queue.Enqueue("b", 1, new Job("b", b));
        }

        // 6 : 2 is a's weighted share (3 : 1); a loses its newest requests, its oldest keep their place.
        Assert.Equal([7, 6], pushedOut);
        Assert.Equal((6, 2, 8), (queue.CountOf("a"), queue.CountOf("b"), queue.Count));
        Assert.Equal(new Admission<Job>(AdmissionOutcome.QueueFull, null), queue.Admit("a", 3, 0, 8));
    }

    [Fact]
    public void Without_fairness_requests_leave_in_arrival_order_and_a_full_queue_refuses_everyone()
    {
        var queue = new FairQueue<Job>(fair: false);
        Add(queue, "a", 0, capacity: 4);
        Add(queue, "a", 1, capacity: 4);
        Add(queue, "b", 0, capacity: 4);
        Add(queue, "a", 2, capacity: 4);
        Assert.Equal(new Admission<Job>(AdmissionOutcome.QueueFull, null), queue.Admit("c", 5, 0, 4));
        Assert.Equal(AdmissionOutcome.TenantFull, queue.Admit("a", 1, 3, 4).Outcome);

        Assert.Equal(["a0", "a1", "b0", "a2"], queue.Dequeue(4).Select(j => j.ToString()));
    }

    [Fact]
    public void Removed_requests_never_leave_and_a_tenant_emptied_by_removal_loses_its_turn()
    {
        var queue = new FairQueue<Job>();
        var a0 = Add(queue, "a", 0, weight: 2);
        var a1 = Add(queue, "a", 1, weight: 2);
        var a2 = Add(queue, "a", 2, weight: 2);
        Add(queue, "b", 0);
        Add(queue, "c", 0);

        Assert.Same(a0, queue.Dequeue(1).Single()); // a's turn, one of its two left
        Assert.True(queue.Remove(a1));
        Assert.False(queue.Remove(a1));
        Assert.True(queue.Remove(a2));
        Assert.False(queue.Remove(a0)); // already dequeued
        Assert.Equal(0, queue.CountOf("a"));

        Assert.Equal(["b0", "c0"], queue.Dequeue(10).Select(j => j.ToString()));
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void The_oldest_and_the_listing_follow_arrival_across_tenants()
    {
        var queue = new FairQueue<Job>();
        Assert.Null(queue.Oldest);
        Assert.False(queue.TryDequeue(out _));
        var a0 = Add(queue, "a", 0, weight: 5);
        var b0 = Add(queue, "b", 0);
        var a1 = Add(queue, "a", 1, weight: 5);

        Assert.Same(a0, queue.Oldest);
        Assert.Equal([a0, b0, a1], queue.Items);
        Assert.Same(a0, queue.Dequeue(1).Single());
        Assert.Same(b0, queue.Oldest);

        queue.Clear();
        Assert.Equal(0, queue.Count);
        Assert.Null(queue.Oldest);
        Assert.Empty(queue.Items);
        Add(queue, "b", 1);
        Assert.Equal("b", Tenants(queue.Dequeue(5)));
    }

    private sealed record Job(string Tenant, int Number)
    {
        public override string ToString() => $"{Tenant}{Number}";
    }
}

public sealed class RestartBackoffTests
{
    private readonly RestartBackoff _backoff = new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10), MaxConsecutiveFailures: 4);

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 4)]
    [InlineData(4, 8)]
    [InlineData(5, 10)]
    [InlineData(60, 10)]
    public void Delays_double_up_to_the_maximum(int failures, int seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), _backoff.DelayAfter(failures));

    [Fact]
    public void Gives_up_after_the_configured_number_of_failures_in_a_row()
    {
        Assert.False(_backoff.GivesUpAfter(3));
        Assert.True(_backoff.GivesUpAfter(4));
    }
}

public sealed class PlacementPolicyTests
{
    private static string Order(string region) => region;

    private static Dictionary<string, IReadOnlyList<string>> Allocation(params (string Region, string[] Shards)[] regions) =>
        regions.ToDictionary(r => r.Region, r => (IReadOnlyList<string>)r.Shards);

    [Fact]
    public void Replicas_of_one_model_spread_over_nodes()
    {
        var allocations = Allocation(("w1", ["m/1/0", "other/1/0", "other/1/1"]), ("w2", []));
        Assert.Equal("w2", PlacementPolicy.ChooseRegion("m/1/1", allocations, Order));

        // Even when the other node is busier with other models.
        allocations = Allocation(("w1", ["m/1/0"]), ("w2", ["a/1/0", "b/1/0", "c/1/0"]));
        Assert.Equal("w2", PlacementPolicy.ChooseRegion("m/1/1", allocations, Order));
    }

    [Fact]
    public void With_the_model_spread_evenly_the_least_loaded_node_wins()
    {
        var allocations = Allocation(("w1", ["a/1/0", "b/1/0"]), ("w2", ["a/1/1"]), ("w3", ["a/1/2", "c/1/0", "d/1/0"]));
        Assert.Equal("w2", PlacementPolicy.ChooseRegion("e/1/0", allocations, Order));
    }

    [Fact]
    public void Ties_go_to_the_first_region_in_order() =>
        Assert.Equal("w1", PlacementPolicy.ChooseRegion("m/1/0", Allocation(("w2", []), ("w1", [])), Order));

    [Fact]
    public void Placing_with_no_worker_is_an_error() =>
        Assert.Throws<InvalidOperationException>(() => PlacementPolicy.ChooseRegion("m/1/0", Allocation(), Order));
}
