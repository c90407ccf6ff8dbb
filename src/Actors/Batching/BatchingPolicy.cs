namespace Serve.Actors.Batching;

public enum BatchAction
{
    /// <summary>Nothing to do until a request arrives or the running batch completes.</summary>
    Idle,

    /// <summary>Send the first <see cref="BatchDecision.Count"/> queued requests to the device now.</summary>
    Dispatch,

    /// <summary>Wait up to <see cref="BatchDecision.Wait"/> for the batch to fill, then decide again.</summary>
    Wait,
}

public readonly record struct BatchDecision(BatchAction Action, int Count, TimeSpan Wait)
{
    public static BatchDecision Idle { get; } = new(BatchAction.Idle, 0, TimeSpan.Zero);

    public static BatchDecision DispatchNow(int count) => new(BatchAction.Dispatch, count, TimeSpan.Zero);

    public static BatchDecision WaitFor(TimeSpan wait) => new(BatchAction.Wait, 0, wait);
}

/// <summary>
/// Dynamic batching as TorchServe defines it (batch_size, max_batch_delay), decided as a pure function.
/// A batch goes out when it is full, or when its oldest request has waited max_batch_delay; while the
/// device runs a batch, requests gather for the next one. Unlike TorchServe the delay counts from the
/// oldest request's arrival, so a request that already waited behind a running batch is not held longer.
/// </summary>
public static class BatchingPolicy
{
    public static BatchDecision Decide(int queued, TimeSpan oldestWaited, bool deviceBusy, int batchSize, TimeSpan maxDelay)
    {
        if (deviceBusy || queued == 0)
        {
            return BatchDecision.Idle;
        }

        if (queued >= batchSize)
        {
            return BatchDecision.DispatchNow(batchSize);
        }

        return oldestWaited >= maxDelay
            ? BatchDecision.DispatchNow(queued)
            : BatchDecision.WaitFor(maxDelay - oldestWaited);
    }
}

/// <summary>Exponential backoff between restarts of a failed replica, and when to stop retrying.</summary>
public sealed record RestartBackoff(TimeSpan Min, TimeSpan Max, int MaxConsecutiveFailures)
{
    public static RestartBackoff Default { get; } = new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 6);

    /// <summary>Delay before the next attempt after <paramref name="consecutiveFailures"/> failures (1-based).</summary>
    public TimeSpan DelayAfter(int consecutiveFailures)
    {
        var exponent = Math.Clamp(consecutiveFailures - 1, 0, 30);
        var ticks = Math.Min(Max.Ticks, Min.Ticks * (1L << Math.Min(exponent, 20)));
        return TimeSpan.FromTicks(ticks);
    }

    /// <summary>True when the replica has failed often enough in a row to stop retrying (a crash loop).</summary>
    public bool GivesUpAfter(int consecutiveFailures) => consecutiveFailures >= MaxConsecutiveFailures;
}
