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
