using Serve.Actors.Batching;
using Serve.Actors.Models;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tests;

/// <summary>The replica's load-and-restart cycle as a plain object: no actor system, a manual clock.</summary>
public sealed class ReplicaLifecycleTests
{
    private static readonly ReplicaId Replica = new("m", "1.0", 0);

    private readonly ManualTime _time = new();
    private readonly ReplicaLifecycle _lifecycle;

    public ReplicaLifecycleTests() =>
        _lifecycle = new ReplicaLifecycle(Replica, new RestartBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), 3), _time);

    private static ModelDefinition Definition(string source = "m.pt", int batchSize = 1) =>
        new("m", "1.0", new TorchScriptSource(source), BuiltInHandlers.Tensor, 1, batchSize, 0, 100, 30, null);

    [Fact]
    public void The_first_definition_loads_a_changed_model_reloads_and_changed_settings_only_apply()
    {
        Assert.Equal(DefinitionChange.FirstLoad, _lifecycle.Adopt(Definition(), "cpu:0"));
        Assert.Equal(DefinitionChange.ServingSettingsOnly, _lifecycle.Adopt(Definition(batchSize: 8), null));
        Assert.Equal("cpu:0", _lifecycle.PlannedDevice);
        Assert.Equal(DefinitionChange.Reload, _lifecycle.Adopt(Definition("other.pt"), null));
        Assert.Throws<ArgumentException>(() => _lifecycle.Adopt(Definition() with { Name = "other" }, null));
    }

    [Fact]
    public void A_load_is_current_until_the_next_one_starts_and_state_times_follow_the_clock()
    {
        _lifecycle.Adopt(Definition(), null);
        var first = _lifecycle.BeginLoad();
        _time.Advance(TimeSpan.FromSeconds(5));
        var second = _lifecycle.BeginLoad();

        Assert.False(_lifecycle.IsCurrent(first));
        Assert.True(_lifecycle.IsCurrent(second));
        _lifecycle.Loaded();
        Assert.Equal(ReplicaState.Ready, _lifecycle.State);
        Assert.Equal(_time.GetUtcNow().UtcDateTime, _lifecycle.SinceUtc);
        Assert.Null(_lifecycle.RefusalReason);
    }

    [Fact]
    public void Failures_back_off_exponentially_then_give_up_and_a_new_model_starts_the_count_again()
    {
        _lifecycle.Adopt(Definition(), null);
        _lifecycle.BeginLoad();

        Assert.Equal(TimeSpan.FromSeconds(1), _lifecycle.Fail("boom"));
        Assert.Equal(ReplicaState.Restarting, _lifecycle.State);
        Assert.Equal("is restarting: boom", _lifecycle.RefusalReason);
        Assert.True(_lifecycle.RetryIsDue(_lifecycle.Generation));
        _lifecycle.BeginLoad();
        Assert.Equal(TimeSpan.FromSeconds(2), _lifecycle.Fail("boom"));
        _lifecycle.BeginLoad();
        Assert.Null(_lifecycle.Fail("boom"));
        Assert.Equal(ReplicaState.Failed, _lifecycle.State);
        Assert.Equal(2, _lifecycle.Restarts);

        Assert.Equal(DefinitionChange.Reload, _lifecycle.Adopt(Definition("fixed.pt"), null));
        Assert.Equal(0, _lifecycle.ConsecutiveFailures);
    }

    [Fact]
    public void A_served_batch_ends_the_failures_in_a_row()
    {
        _lifecycle.Adopt(Definition(), null);
        _lifecycle.BeginLoad();
        _lifecycle.Fail("boom");
        _lifecycle.BeginLoad();
        _lifecycle.Loaded();
        _lifecycle.Served();

        Assert.Equal(0, _lifecycle.ConsecutiveFailures);
        _lifecycle.BeginLoad();
        Assert.Equal(TimeSpan.FromSeconds(1), _lifecycle.Fail("boom again"));
    }

    [Fact]
    public void A_rejected_file_is_not_retried_and_a_stale_retry_timer_is_not_due()
    {
        _lifecycle.Adopt(Definition(), null);
        var load = _lifecycle.BeginLoad();
        _lifecycle.Fail("transient");
        var retry = _lifecycle.Generation;
        _lifecycle.BeginLoad();
        _lifecycle.Reject("model file refused: not a TorchScript archive");

        Assert.Equal(ReplicaState.Rejected, _lifecycle.State);
        Assert.False(_lifecycle.RetryIsDue(retry));
        Assert.False(_lifecycle.RetryIsDue(load));
        Assert.Equal("is rejected: model file refused: not a TorchScript archive", _lifecycle.RefusalReason);
    }

    [Fact]
    public void Handing_off_refuses_requests_and_cancels_a_due_retry()
    {
        _lifecycle.Adopt(Definition(), null);
        _lifecycle.BeginLoad();
        _lifecycle.Fail("boom");

        _lifecycle.BeginHandOff();

        Assert.Equal("is moving to another node", _lifecycle.RefusalReason);
        Assert.False(_lifecycle.RetryIsDue(_lifecycle.Generation));
    }
}
