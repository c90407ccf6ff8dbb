using Akka.Actor;
using Akka.Hosting;
using Serve.Actors.Hosting;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Gateway.Management;

/// <summary>How the management endpoints reach the registry and watch replicas come up.</summary>
public interface IManagementClient
{
    Task<RegistryResult> SendAsync(IServeMessage command, CancellationToken cancellationToken);

    /// <summary>
    /// Waits until the model version has <paramref name="replicas"/> ready replicas where the registry placed
    /// them and no move in progress, or one of them failed for good or had its model file refused, or the
    /// timeout passed.
    /// </summary>
    Task<ReplicasOutcome> WaitForReplicasAsync(ModelKey key, int replicas, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>How waiting for replicas ended: all ready, or not, with the reason when the model file was refused.</summary>
public sealed record ReplicasOutcome(bool Ready, string? Refusal)
{
    public static readonly ReplicasOutcome AllReady = new(true, null);
    public static readonly ReplicasOutcome NotReady = new(false, null);
}

public sealed class ManagementClient(
    IRequiredActor<ModelRegistry> registry, IRequiredActor<CatalogSubscriberKey> subscriber, CatalogView catalog) : IManagementClient
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(15);

    public async Task<RegistryResult> SendAsync(IServeMessage command, CancellationToken cancellationToken)
    {
        try
        {
            var proxy = await registry.GetAsync(cancellationToken);
            var result = await proxy.Ask<RegistryResult>(command, AskTimeout, cancellationToken);
            if (result.Error is null)
            {
                // Read your own writes: this gateway's catalog has the change before the call returns.
                var local = await subscriber.GetAsync(cancellationToken);
                await local.Ask<object>(CatalogSubscriber.Refresh.Instance, AskTimeout, cancellationToken);
            }

            return result;
        }
        catch (AskTimeoutException)
        {
            return RegistryResult.Refused(ServeErrorKind.Unavailable,
                $"The model registry did not answer within {AskTimeout.TotalSeconds:0} s; the cluster may be starting or lost its gateways");
        }
    }

    public async Task<ReplicasOutcome> WaitForReplicasAsync(ModelKey key, int replicas, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var outcome = new TaskCompletionSource<ReplicasOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Check(CatalogState state)
        {
            var entry = state.Find(key.Name, key.Version);
            var active = entry?.ActiveIndices.ToHashSet() ?? [];
            var statuses = entry?.Replicas.Where(r => active.Contains(r.Replica.Index)).ToArray() ?? [];
            var settled = !state.Snapshot.ReplanPending && (entry?.Assignments.All(a => !a.Retiring) ?? false);
            if (settled && statuses.Count(r => r.State == ReplicaState.Ready && state.IsAvailable(r)) >= replicas)
            {
                outcome.TrySetResult(ReplicasOutcome.AllReady);
            }
            else if (statuses.FirstOrDefault(r => r.State == ReplicaState.Rejected) is { } rejected)
            {
                outcome.TrySetResult(new ReplicasOutcome(false, rejected.LastError));
            }
            else if (statuses.Any(r => r.State == ReplicaState.Failed))
            {
                outcome.TrySetResult(ReplicasOutcome.NotReady);
            }
        }

        catalog.Changed += Check;
        try
        {
            Check(catalog.Current);
            return await outcome.Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            return ReplicasOutcome.NotReady;
        }
        finally
        {
            catalog.Changed -= Check;
        }
    }
}
