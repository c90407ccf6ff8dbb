using Serve.Actors.Protocol;

namespace Serve.Actors.Models;

/// <summary>The answers a replica sends for a batch that ran, one per request.</summary>
internal static class BatchReplies
{
    /// <summary>
    /// <paramref name="queued"/>'s answer from its <paramref name="outcome"/>, with where its time went. An
    /// answer larger than <paramref name="maxReplyBytes"/> would not fit in a frame between nodes (Akka.Remote
    /// drops it silently), so it becomes an error instead.
    /// </summary>
    public static InferenceReply For(
        QueuedRequest queued, InferenceOutcome outcome, TimeSpan queueWait, BatchResult batch, int batchSize, ReplicaId replica, string device, long maxReplyBytes)
    {
        var requestId = queued.Request.RequestId;
        switch (outcome)
        {
            case InferenceOutcome.Success success:
                var size = SizeOf(success.Output);
                return size > maxReplyBytes
                    ? new InferenceFailed(requestId, ServeErrors.ReplyTooLarge(size, maxReplyBytes))
                    : new InferenceSucceeded(requestId, success.Output, new InferenceTiming(
                        QueueMicros: (long)queueWait.TotalMicroseconds,
                        DeviceMicros: (long)batch.DeviceTime.TotalMicroseconds,
                        BatchSize: batchSize,
                        Replica: replica.EntityId,
                        Device: device));
            case InferenceOutcome.Failure failure:
                return new InferenceFailed(requestId, failure.Error);
            default:
                throw new InvalidOperationException($"unknown outcome {outcome.GetType().Name}");
        }
    }

    public static long SizeOf(InferenceOutput output) => output switch
    {
        DocumentOutput document => document.Body.LongLength,
        TensorOutput tensors => tensors.Tensors.Sum(t => t.Data.LongLength),
        _ => 0,
    };
}
