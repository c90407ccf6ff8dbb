namespace Serve.Actors.Protocol;

/// <summary>
/// Whose request it is, as a replica schedules it: each tenant's requests wait in their own queue, and
/// the queues are served in proportion to <paramref name="Weight"/> (from the tenant's priority; at least
/// 1). <paramref name="QueueLimit"/> bounds how many of the tenant's requests one replica holds; 0: no
/// bound of its own beyond the model's job_queue_size, of which it gets a fair share when the queue is
/// full (see <c>FairQueue</c>).
/// </summary>
public sealed record TenantTag(string Id, int Weight, int QueueLimit)
{
    /// <summary>The operator (the server's own keys): weight 1, no queue bound of its own.</summary>
    public static TenantTag Admin { get; } = new(ModelDefinition.AdminTenant, 1, 0);
}
