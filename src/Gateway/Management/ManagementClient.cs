using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.Options;
using Serve.Actors.Hosting;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Management;

/// <summary>How the management endpoints reach the registry and watch replicas come up.</summary>
public interface IManagementClient
{
    Task<RegistryResult> SendAsync(IServeMessage command, CancellationToken cancellationToken);

    /// <summary>
    /// Registers a model version. When the registry does not answer in time it may still apply the
    /// registration, so the client asks again what it has before answering: the outcome is definite unless
    /// the registry never answered at all (then the caller must keep the model's files).
    /// </summary>
    Task<RegistrationOutcome> RegisterAsync(RegisterModel command, CancellationToken cancellationToken);

    /// <summary>
    /// Waits until the model version has <paramref name="replicas"/> ready replicas where the registry placed
    /// them and no move in progress, or one of them failed for good or had its model file refused, or the
    /// timeout passed.
    /// </summary>
    Task<ReplicasOutcome> WaitForReplicasAsync(ModelKey key, int replicas, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>What the registry did with a registration; <paramref name="Definite"/> is false when nobody knows yet.</summary>
public sealed record RegistrationOutcome(RegistryResult Result, bool Definite);

/// <summary>How waiting for replicas ended: all ready, or not, with the reason when the model file was refused.</summary>
public sealed record ReplicasOutcome(bool Ready, string? Refusal)
{
    public static readonly ReplicasOutcome AllReady = new(true, null);
    public static readonly ReplicasOutcome NotReady = new(false, null);
}

public sealed partial class ManagementClient(
    IRequiredActor<ModelRegistry> registry, IRequiredActor<CatalogSubscriberKey> subscriber, CatalogView catalog,
    IOptions<RegistryOptions> options, ILogger<ManagementClient> logger) : IManagementClient
{
    /// <summary>How many times a registration that went unanswered is looked up before its outcome is called unknown.</summary>
    private const int LookUps = 3;

    private readonly TimeSpan _askTimeout = options.Value.AskTimeout;

    public async Task<RegistryResult> SendAsync(IServeMessage command, CancellationToken cancellationToken) =>
        await AskAsync(command, cancellationToken)
        ?? RegistryResult.Refused(ServeErrorKind.Unavailable,
            $"The model registry did not answer within {_askTimeout.TotalSeconds:0.#} s; the cluster may be starting or lost its gateways");

    public async Task<RegistrationOutcome> RegisterAsync(RegisterModel command, CancellationToken cancellationToken)
    {
        if (await AskAsync(command, cancellationToken) is { } answered)
        {
            return new RegistrationOutcome(answered, Definite: true);
        }

        var wanted = command.Definition;
        LogUnanswered(wanted.Key.ToString(), _askTimeout.TotalSeconds);
        var proxy = await registry.GetAsync(cancellationToken);
        for (var lookUp = 0; lookUp < LookUps; lookUp++)
        {
            ModelResolved resolved;
            try
            {
                // Through the same proxy as the registration and after it, so the registry answers once it has
                // applied or refused that (it holds commands back while it persists).
                resolved = await proxy.Ask<ModelResolved>(new ResolveModel(wanted.Key), _askTimeout, cancellationToken);
            }
            catch (AskTimeoutException)
            {
                continue;
            }

            if (resolved.Definition is not { } found)
            {
                return new RegistrationOutcome(RegistryResult.Refused(ServeErrorKind.Unavailable,
                    $"The model registry did not answer in time and has not registered model {wanted.Name} version {wanted.Version}; try again"), Definite: true);
            }

            if (found.Source != wanted.Source || found.Url != wanted.Url)
            {
                return new RegistrationOutcome(RegistryResult.Refused(ServeErrorKind.Conflict,
                    $"Model version {wanted.Version} is already registered for model {wanted.Name}"), Definite: true);
            }

            await RefreshAsync(cancellationToken);
            return new RegistrationOutcome(RegistryResult.Done(DesiredState.Registered(found)), Definite: true);
        }

        return new RegistrationOutcome(RegistryResult.Refused(ServeErrorKind.Unavailable,
            $"The model registry did not answer; the registration of model {wanted.Name} version {wanted.Version} may still be applied: " +
            $"see GET /models/{wanted.Name}/{wanted.Version} before trying again"), Definite: false);
    }

    /// <summary>The registry's answer, or null when it gave none in time.</summary>
    private async Task<RegistryResult?> AskAsync(IServeMessage command, CancellationToken cancellationToken)
    {
        var proxy = await registry.GetAsync(cancellationToken);
        RegistryResult result;
        try
        {
            result = await proxy.Ask<RegistryResult>(command, _askTimeout, cancellationToken);
        }
        catch (AskTimeoutException)
        {
            return null;
        }

        if (result.Error is null)
        {
            await RefreshAsync(cancellationToken);
        }

        return result;
    }

    /// <summary>Read your own writes: this gateway's catalog has the change before the call returns.</summary>
    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            var local = await subscriber.GetAsync(cancellationToken);
            await local.Ask<object>(CatalogSubscriber.Refresh.Instance, _askTimeout, cancellationToken);
        }
        catch (AskTimeoutException)
        {
            // The change happened; this gateway's catalog shows it with the registry's next publication.
        }
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "The model registry did not answer the registration of {Model} within {Seconds} s; asking what it did before answering the caller")]
    private partial void LogUnanswered(string model, double seconds);

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
