using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.Options;
using Serve.Actors.Hosting;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Gateway.Inference;

/// <summary>
/// Reaches model replicas: directly when the replica lives in this process (the standalone server), else
/// through the shard region (a proxy on gateway-only nodes). Picks a replica with
/// <see cref="ReplicaSelector"/>, asks it with the model's response timeout and the caller's cancellation,
/// and tells the replica to drop the request if the caller gives up. When the replica's node becomes
/// unreachable or leaves the cluster, or a local replica stops, requests waiting on it are retried at once
/// on another replica instead of waiting out their timeout, and a replica that could not take a request
/// (restarting, moving) gets one retry elsewhere. Inference is idempotent, so a retry never does harm.
/// </summary>
public sealed class ShardedInferenceClient : IInferenceClient
{
    private const int MaxAttempts = 2;

    private readonly IRequiredActor<ModelReplicaRegion> _region;
    private readonly CatalogView _catalog;
    private readonly LocalReplicas _local;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<ReplicaId, int> _outstanding = new();
    private readonly long _maxPayloadBytes;

    /// <summary>Requests waiting for an answer, with what each waits on: a node address, or a local replica.</summary>
    private readonly ConcurrentDictionary<CancellationTokenSource, string> _waiting = new();

    public ShardedInferenceClient(
        IRequiredActor<ModelReplicaRegion> region, CatalogView catalog, LocalReplicas local, TimeProvider time, IOptions<ServeClusterOptions> cluster)
    {
        _maxPayloadBytes = cluster.Value.MaximumPayloadBytes;
        _region = region;
        _catalog = catalog;
        _local = local;
        _time = time;
        _catalog.Changed += state => Abandon(state.UnavailableNodes.Contains);
        _local.Removed += replica => Abandon(key => key == LocalKey(replica));
    }

    public async Task<InferenceReply> InferAsync(
        CatalogEntry model, InferenceInput input, TenantTag tenant, DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        var requestId = Guid.NewGuid().ToString("N");
        var definition = model.Definition;
        var modelDeadline = _time.GetUtcNow() + TimeSpan.FromSeconds(definition.ResponseTimeoutSeconds);
        var clientDeadlineFirst = deadline < modelDeadline;
        var effectiveDeadline = clientDeadlineFirst ? deadline!.Value : modelDeadline;
        var tried = new HashSet<int>();
        InferenceReply? reply = null;
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var state = _catalog.Current;
            // The same version, with its replicas as they are now (a retry must see the one that just failed).
            var current = state.Find(definition.Name, definition.Version) ?? model;
            var (index, none) = ReplicaSelector.Choose(current, state.UnavailableNodes,
                i => _outstanding.GetValueOrDefault(new ReplicaId(definition.Name, definition.Version, i)), tried, Random.Shared);
            if (none is not null)
            {
                return reply ?? new InferenceFailed(requestId, none);
            }

            tried.Add(index);
            var remaining = effectiveDeadline - _time.GetUtcNow();
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }

            var replica = new ReplicaId(definition.Name, definition.Version, index);
            var node = current.Replicas.FirstOrDefault(s => s.Replica.Index == index)?.NodeAddress;
            reply = await AskReplica(replica, node, requestId, input, tenant, remaining, cancellationToken);
            if (reply is not InferenceFailed { Error.Kind: ServeErrorKind.Unavailable })
            {
                return reply;
            }
        }

        return reply ?? new InferenceFailed(requestId, clientDeadlineFirst
            ? ServeErrors.ClientDeadlinePassed(definition.Name)
            : ServeErrors.ResponseTimeout(definition.Name, definition.ResponseTimeoutSeconds));
    }

    private async Task<InferenceReply> AskReplica(
        ReplicaId replica, string? node, string requestId, InferenceInput input, TenantTag tenant, TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        var target = _local.TryGet(replica, out var localReplica) ? localReplica : _region.ActorRef;
        if (localReplica is null && input.PayloadBytes > _maxPayloadBytes)
        {
            // Akka.Remote would drop the message silently and the caller would wait out its timeout.
            return new InferenceFailed(requestId, ServeErrors.PayloadTooLargeForFrame(input.PayloadBytes, _maxPayloadBytes));
        }

        var waitsOn = localReplica is not null ? LocalKey(replica) : node;
        using var abandoned = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (waitsOn is not null)
        {
            _waiting[abandoned] = waitsOn;

            // What it waits on may have gone between choosing it and listing the request: look again.
            var gone = localReplica is not null
                ? !_local.TryGet(replica, out var stillThere) || !ReferenceEquals(stillThere, localReplica)
                : _catalog.Current.UnavailableNodes.Contains(waitsOn);
            if (gone)
            {
                await abandoned.CancelAsync();
            }
        }

        _outstanding.AddOrUpdate(replica, 1, (_, n) => n + 1);
        await using var onCancel = cancellationToken.Register(() => target.Tell(new CancelInference(replica, requestId)));
        try
        {
            return await target.Ask<InferenceReply>(new InferenceRequest(replica, requestId, input, timeout, tenant), timeout, abandoned.Token);
        }
        catch (AskTimeoutException)
        {
            target.Tell(new CancelInference(replica, requestId));
            return new InferenceFailed(requestId, ServeErrors.ReplicaDidNotAnswer(replica, timeout));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return new InferenceFailed(requestId, ServeErrors.ClientCancelled);
        }
        catch (OperationCanceledException)
        {
            return new InferenceFailed(requestId, ServeErrors.ReplicaGone(replica));
        }
        finally
        {
            _waiting.TryRemove(abandoned, out _);
            _outstanding.AddOrUpdate(replica, 0, (_, n) => Math.Max(0, n - 1));
        }
    }

    private static string LocalKey(ReplicaId replica) => "local:" + replica.EntityId;

    /// <summary>Cancels the waiting of every request whose node or local replica matches: it is retried elsewhere.</summary>
    private void Abandon(Func<string, bool> gone)
    {
        foreach (var (request, waitsOn) in _waiting)
        {
            if (!gone(waitsOn))
            {
                continue;
            }

            try
            {
                request.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The request finished while we were looking.
            }
        }
    }
}
