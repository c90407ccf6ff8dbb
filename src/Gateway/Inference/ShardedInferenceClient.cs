using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Hosting;
using Serve.Actors.Hosting;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Gateway.Inference;

/// <summary>
/// Reaches model replicas through the shard region (a proxy on gateway-only nodes). Picks a replica with
/// <see cref="ReplicaSelector"/>, asks it with the model's response timeout and the caller's cancellation,
/// tells the replica to drop the request if the caller gives up, and retries once on another replica when
/// the first could not take the request (restarting, moving, on a lost node). Inference is idempotent.
/// </summary>
public sealed class ShardedInferenceClient(
    IRequiredActor<ModelReplicaRegion> region, CatalogView catalog, TimeProvider time) : IInferenceClient
{
    private const int MaxAttempts = 2;

    private readonly ConcurrentDictionary<ReplicaId, int> _outstanding = new();

    public async Task<InferenceReply> InferAsync(string model, string? version, InferenceInput input, CancellationToken cancellationToken)
    {
        var requestId = Guid.NewGuid().ToString("N");
        if (ModelLookup.Find(catalog.Current, model, version, out var entry) is { } notFound)
        {
            return new InferenceFailed(requestId, notFound);
        }

        var definition = entry!.Definition;
        var timeout = TimeSpan.FromSeconds(definition.ResponseTimeoutSeconds);
        var deadline = time.GetUtcNow().UtcDateTime + timeout;
        var tried = new HashSet<int>();
        InferenceReply? reply = null;
        var random = Random.Shared;
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var current = catalog.Current.Find(definition.Name, definition.Version) ?? entry;
            var choice = ReplicaSelector.Choose(current, catalog.Current.UnreachableNodes,
                i => _outstanding.GetValueOrDefault(new ReplicaId(definition.Name, definition.Version, i)), tried, random);
            if (choice.Index is not { } index)
            {
                return reply ?? new InferenceFailed(requestId, choice.Error!);
            }

            tried.Add(index);
            var replica = new ReplicaId(definition.Name, definition.Version, index);
            var remaining = deadline - time.GetUtcNow().UtcDateTime;
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }

            reply = await AskReplica(replica, requestId, input, deadline, remaining, cancellationToken);
            if (reply is not InferenceFailed { Error.Kind: ServeErrorKind.Unavailable })
            {
                return reply;
            }
        }

        return reply ?? Failed(requestId, ServeErrorKind.DeadlineExceeded,
            $"Model \"{model}\" did not answer within its response timeout of {definition.ResponseTimeoutSeconds} s");
    }

    private async Task<InferenceReply> AskReplica(
        ReplicaId replica, string requestId, InferenceInput input, DateTime deadline, TimeSpan timeout, CancellationToken cancellationToken)
    {
        _outstanding.AddOrUpdate(replica, 1, (_, n) => n + 1);
        var regionRef = region.ActorRef;
        await using var onCancel = cancellationToken.Register(() => regionRef.Tell(new CancelInference(replica, requestId)));
        try
        {
            return await regionRef.Ask<InferenceReply>(new InferenceRequest(replica, requestId, input, deadline), timeout, cancellationToken);
        }
        catch (AskTimeoutException)
        {
            regionRef.Tell(new CancelInference(replica, requestId));
            return Failed(requestId, ServeErrorKind.DeadlineExceeded,
                $"Replica {replica} did not answer within the response timeout of {timeout.TotalSeconds:0.#} s");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Failed(requestId, ServeErrorKind.Cancelled, "The client cancelled the request");
        }
        finally
        {
            _outstanding.AddOrUpdate(replica, 0, (_, n) => Math.Max(0, n - 1));
        }
    }

    private static InferenceFailed Failed(string requestId, ServeErrorKind kind, string message) =>
        new(requestId, new ServeError(kind, message));
}
