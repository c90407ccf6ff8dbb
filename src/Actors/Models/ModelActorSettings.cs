using Serve.Actors.Batching;
using Serve.Actors.Hosting;

namespace Serve.Actors.Models;

/// <param name="MaxReplyBytes">
/// The largest answer a replica sends: a bigger one would not fit in a frame between nodes (Akka.Remote
/// drops it silently), so it is answered with an error instead.
/// </param>
public sealed record ModelActorSettings(RestartBackoff Backoff, TimeSpan StatusInterval, TimeSpan ResolveRetryInterval, long MaxReplyBytes)
{
    public static ModelActorSettings Default { get; } = new(
        RestartBackoff.Default, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2), new ServeClusterOptions().MaximumPayloadBytes);

    /// <summary>
    /// Serve tenants' queues by weighted round robin and share a full queue between them; false: one
    /// FIFO queue across tenants, as before (for comparison). See <see cref="FairQueue{T}"/>.
    /// </summary>
    public bool FairScheduling { get; init; } = true;

    /// <summary>The clock for queue waits, deadlines and state times.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}
