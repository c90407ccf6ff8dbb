using System.Diagnostics.CodeAnalysis;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using Serve.Actors.Batching;
using Serve.Actors.Protocol;

namespace Serve.Actors.Models;

/// <summary>
/// One replica of one model version: a sharded entity bound to one device of the node that hosts it.
/// A shell over two plain objects: <see cref="ReplicaQueue"/> (admission per tenant, bounded by
/// job_queue_size and each tenant's queue limit, served fairly; decoding ahead; batches) and
/// <see cref="ReplicaLifecycle"/> (loading, restarts with exponential backoff until a crash loop ends in
/// <see cref="ReplicaState.Failed"/>, hand-off). Its behaviours say what it does with a request in each
/// state: queue it while loading, queue and run it when ready, refuse it while down or handing off. Loads
/// and batches run off the mailbox and come back as messages; every state change is reported to the
/// registry.
/// </summary>
/// <remarks>
/// Longer than Serve's files usually are because it is only wiring: four behaviours and the handlers of
/// fourteen messages. Every decision it acts on is made, and unit-tested, in the objects above.
/// </remarks>
[SuppressMessage("Design", "CA1001", Justification = "Actors release resources in PostStop, not Dispose.")]
public sealed class ModelActor : ReceiveActor, IWithTimers
{
    private const string BatchTimer = "batch";
    private const string RetryTimer = "retry";
    private const string ResolveTimer = "resolve";
    private const string StatusTimer = "status";

    private readonly ReplicaId _replica;
    private readonly IInferenceBackend _backend;
    private readonly IActorRef _registry;
    private readonly ModelActorSettings _settings;
    private readonly LocalReplicas? _local;
    private readonly string _nodeAddress;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly ReplicaQueue _queue;
    private readonly ReplicaLifecycle _lifecycle;
    private readonly CancellationTokenSource _lifetime = new();

    private readonly ModelSlot _model = new();
    private List<QueuedRequest>? _runningBatch;
    private Task<ILoadedModel>? _loading;
    private ModelSignature? _reportedSignature;

    public ModelActor(ReplicaId replica, IInferenceBackend backend, IActorRef registry, ModelActorSettings settings, LocalReplicas? local)
    {
        _replica = replica;
        _backend = backend;
        _registry = registry;
        _settings = settings;
        _local = local;
        _queue = new ReplicaQueue(replica, settings.FairScheduling, settings.Time);
        _lifecycle = new ReplicaLifecycle(replica, settings.Backoff, settings.Time);
        _nodeAddress = Cluster.Get(Context.System).SelfAddress.ToString();
        Become(Queuing);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(
        ReplicaId replica, IInferenceBackend backend, IActorRef registry, ModelActorSettings settings, LocalReplicas? local = null) =>
        Akka.Actor.Props.Create(() => new ModelActor(replica, backend, registry, settings, local));

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer(StatusTimer, ReportStatusTick.Instance, _settings.StatusInterval);
        // Normally the registry's EnsureReplica arrives first; ask for the definition only if it does not.
        Timers.StartPeriodicTimer(ResolveTimer, ResolveTick.Instance, TimeSpan.FromMilliseconds(200), _settings.ResolveRetryInterval);
        _local?.Add(_replica, Self);
        ReportStatus();
    }

    protected override void PostStop()
    {
        _local?.Remove(_replica, Self);
        _lifetime.Cancel();
        var stopped = ServeErrors.ReplicaStopped(_replica);
        Answer(_queue.Drain(stopped));
        if (_runningBatch is not null)
        {
            Answer(_runningBatch, stopped);
        }

        _model.FreeAll();

        // A load still in flight finishes into nothing: free what it loaded.
        _loading?.ContinueWith(
            load => load.Result.DisposeAsync().AsTask(),
            CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        _lifecycle.Stopped();
        ReportStatus();
        _lifetime.Dispose();
    }

    // Behaviours. Each registers what it does differently first, then the handlers every state shares
    // (the first handler registered for a message wins).

    /// <summary>Starting or Loading: requests wait in the queue for the model.</summary>
    private void Queuing()
    {
        Receive<InferenceRequest>(request => Admit(request));
        Shared();
    }

    /// <summary>Ready: requests are queued and batches go to the device.</summary>
    private void Serving()
    {
        Receive<InferenceRequest>(request =>
        {
            Admit(request);
            TryDispatch();
        });
        Receive<BatchDelayElapsed>(_ => TryDispatch());
        Shared();
    }

    /// <summary>Restarting, Failed or Rejected: requests are refused with the reason; a due restart loads again.</summary>
    private void Refusing()
    {
        Receive<RetryLoad>(retry =>
        {
            if (_lifecycle.RetryIsDue(retry.Generation))
            {
                StartLoad();
            }
        });
        Shared();
    }

    /// <summary>Moving away: the running batch finishes, then the actor stops. New definitions and loads are ignored.</summary>
    private void HandingOff()
    {
        Receive<EnsureReplica>(_ => { });
        Receive<ModelResolved>(_ => { });
        Receive<HandOff>(_ => { });
        Shared();
    }

    private void Shared()
    {
        Receive<EnsureReplica>(ensure => OnDefinition(ensure.Definition, ensure.Device));
        Receive<ModelResolved>(OnResolved);
        Receive<InferenceRequest>(request =>
            Sender.Tell(new InferenceFailed(request.RequestId, ServeErrors.ReplicaUnavailable(_replica, _lifecycle.RefusalReason ?? "is not ready"))));
        Receive<CancelInference>(OnCancel);
        Receive<Loaded>(OnLoaded);
        Receive<LoadFailed>(OnLoadFailed);
        Receive<BatchCompleted>(OnBatchCompleted);
        Receive<BatchCrashed>(OnBatchCrashed);
        Receive<ResolveTick>(_ => _registry.Tell(new ResolveModel(_replica.Key)));
        Receive<ReportStatusTick>(_ => ReportStatus());
        Receive<ReportNow>(_ => ReportStatus(Sender));
        Receive<HandOff>(_ => BeginHandOff());
        Receive<StopReplica>(_ =>
        {
            _log.Info("Replica {0}: no longer wanted (scaled down or unregistered); stopping", _replica);
            Context.Parent.Tell(new Passivate(HandOff.Instance));
        });

        // Timers set in another state, now moot.
        Receive<BatchDelayElapsed>(_ => { });
        Receive<RetryLoad>(_ => { });
    }

    /// <summary>Takes the behaviour of the state the lifecycle is in now, and reports that state.</summary>
    private void BecomeCurrentState()
    {
        Become(_lifecycle.HandingOff ? HandingOff : _lifecycle.State switch
        {
            ReplicaState.Starting or ReplicaState.Loading => Queuing,
            ReplicaState.Ready => Serving,
            _ => Refusing,
        });
        ReportStatus();
    }

    private void OnDefinition(ModelDefinition definition, string? plannedDevice)
    {
        if (definition.Key != _replica.Key)
        {
            _log.Warning("Replica {0} ignored a definition for {1}", _replica, definition.Key);
            return;
        }

        Timers.Cancel(ResolveTimer);
        switch (_lifecycle.Adopt(definition, plannedDevice))
        {
            case DefinitionChange.FirstLoad:
                StartLoad();
                break;
            case DefinitionChange.Reload:
                _log.Info("Replica {0}: model definition changed, reloading", _replica);
                _model.Release(batchRunning: _runningBatch is not null);
                StartLoad();
                break;
            default:
                TryDispatch();
                break;
        }
    }

    private void OnResolved(ModelResolved resolved)
    {
        if (resolved.Definition is not null)
        {
            OnDefinition(resolved.Definition, null);
        }
        else if (_lifecycle.Definition is null)
        {
            _log.Warning("Replica {0}: the registry does not know model {1}; stopping", _replica, _replica.Key);
            Answer(_queue.Drain(ServeErrors.VersionNotFound(_replica.Model, _replica.Version)));
            Context.Parent.Tell(new Passivate(HandOff.Instance));
        }
    }

    private void StartLoad()
    {
        var generation = _lifecycle.BeginLoad();
        BecomeCurrentState();
        _log.Info("Replica {0}: loading {1}", _replica, _lifecycle.Definition!.Source);
        _loading = _backend.LoadAsync(_replica, _lifecycle.Definition, _lifecycle.PlannedDevice, _lifetime.Token);
        _loading.PipeTo(
            Self,
            success: model => new Loaded(generation, model),
            failure: error => new LoadFailed(generation, error));
    }

    private void OnLoaded(Loaded loaded)
    {
        var current = _lifecycle.IsCurrent(loaded.Generation);
        if (current)
        {
            _loading = null;
        }

        if (!current || _lifecycle.HandingOff)
        {
            _ = loaded.Model.DisposeAsync().AsTask();
            return;
        }

        _model.Install(loaded.Model);
        _log.Info("Replica {0}: ready on {1}", _replica, loaded.Model.Device);
        _lifecycle.Loaded();
        BecomeCurrentState();
        TryDispatch();
    }

    private void OnLoadFailed(LoadFailed failed)
    {
        if (!_lifecycle.IsCurrent(failed.Generation))
        {
            return;
        }

        _loading = null;
        if (_lifecycle.HandingOff)
        {
            return;
        }

        if (failed.Error is ModelLoadException { Rejected: true })
        {
            Reject($"model file refused: {Describe(failed.Error)}");
            return;
        }

        Fail($"loading failed: {Describe(failed.Error)}");
    }

    private void Fail(string cause)
    {
        _model.Release(batchRunning: _runningBatch is not null);
        var retryAfter = _lifecycle.Fail(cause);
        Answer(_queue.Drain(ServeErrors.ReplicaUnavailable(_replica, cause)));
        if (retryAfter is { } delay)
        {
            _log.Error("Replica {0}: {1}. Restarting in {2}", _replica, cause, delay);
            Timers.StartSingleTimer(RetryTimer, new RetryLoad(_lifecycle.Generation), delay);
        }
        else
        {
            _log.Error("Replica {0}: {1}. Failed {2} times in a row; not retrying until its definition changes",
                _replica, cause, _lifecycle.ConsecutiveFailures);
        }

        BecomeCurrentState();
    }

    private void FailForGood(string cause)
    {
        _model.Release(batchRunning: _runningBatch is not null);
        _lifecycle.FailForGood(cause);
        Answer(_queue.Drain(ServeErrors.ReplicaUnavailable(_replica, cause)));
        _log.Error("Replica {0}: {1}", _replica, cause);
        BecomeCurrentState();
    }

    private void Reject(string cause)
    {
        _model.Release(batchRunning: _runningBatch is not null);
        _lifecycle.Reject(cause);
        Answer(_queue.Drain(ServeErrors.ReplicaUnavailable(_replica, cause)));
        _log.Error("Replica {0}: {1}. Not retrying until its definition changes", _replica, cause);
        BecomeCurrentState();
    }

    private void Admit(InferenceRequest request)
    {
        var capacity = _lifecycle.Definition?.JobQueueSize ?? ModelDefinition.DefaultJobQueueSize;
        var admission = _queue.Admit(request, Sender, capacity);
        if (admission.Refusal is { } refusal)
        {
            Sender.Tell(new InferenceFailed(request.RequestId, refusal));
        }

        if (admission.PushedOut is { } pushedOut)
        {
            Answer([pushedOut]);
        }
    }

    private void OnCancel(CancelInference cancel)
    {
        if (_queue.Cancel(cancel.RequestId) is { } cancelled)
        {
            cancelled.ReplyTo.Tell(new InferenceFailed(cancel.RequestId, ServeErrors.CancelledBeforeRun));
        }
    }

    /// <summary>Dispatches what the batching policy says is due, then starts decoding what comes next.</summary>
    private void TryDispatch()
    {
        if (_lifecycle.State != ReplicaState.Ready || _lifecycle.HandingOff || _model.Current is not { } model
            || _lifecycle.Definition is not { } definition)
        {
            return;
        }

        while (true)
        {
            var decision = _queue.Decide(_runningBatch is not null, definition.BatchSize, TimeSpan.FromMilliseconds(definition.MaxBatchDelayMs));
            if (decision.Action == BatchAction.Wait && !Timers.IsTimerActive(BatchTimer))
            {
                Timers.StartSingleTimer(BatchTimer, BatchDelayElapsed.Instance, decision.Wait);
            }

            if (decision.Action != BatchAction.Dispatch)
            {
                break;
            }

            Timers.Cancel(BatchTimer);
            var taken = _queue.Take(decision.Count);
            Answer(taken.Expired);
            if (taken.Requests.Count > 0)
            {
                Run(model, taken.Requests);
                break;
            }

            // Every request taken had expired; decide again with what is left.
        }

        _queue.PrepareAhead(definition.BatchSize, model.Prepare);
    }

    private void Run(ILoadedModel model, List<QueuedRequest> batch)
    {
        _runningBatch = batch;
        var generation = _lifecycle.Generation;
        var dispatched = _settings.Time.GetTimestamp();
        var inputs = batch.Select(queued => queued.Prepared ?? model.Prepare(queued.Request.Input)).ToArray();
        model.InferAsync(inputs, _lifetime.Token).PipeTo(
            Self,
            success: result => new BatchCompleted(generation, batch, result, dispatched),
            failure: error => new BatchCrashed(generation, batch, error));
    }

    private void OnBatchCompleted(BatchCompleted completed)
    {
        if (!ReferenceEquals(completed.Batch, _runningBatch))
        {
            return; // from before a restart; those requests were already answered
        }

        var outcomes = completed.Result.Outcomes;
        if (outcomes.Count != completed.Batch.Count)
        {
            OnBatchCrashed(new BatchCrashed(completed.Generation, completed.Batch, new ModelExecutionException(
                $"the handler returned {outcomes.Count} results for a batch of {completed.Batch.Count}")));
            return;
        }

        _runningBatch = null;
        _model.BatchEnded();
        _lifecycle.Served();
        var device = _model.Current?.Device ?? string.Empty;
        for (var i = 0; i < outcomes.Count; i++)
        {
            var queued = completed.Batch[i];
            var queueWait = _settings.Time.GetElapsedTime(queued.ArrivedTimestamp, completed.DispatchedTimestamp);
            queued.ReplyTo.Tell(BatchReplies.For(
                queued, outcomes[i], queueWait, completed.Result, completed.Batch.Count, _replica, device, _settings.MaxReplyBytes));
        }

        if (_lifecycle.HandingOff)
        {
            Context.Stop(Self);
            return;
        }

        // A model may learn its signature from its first forward pass (TorchScript does not declare it).
        if (_model.Current is { } model && model.Signature != _reportedSignature)
        {
            ReportStatus();
        }

        TryDispatch();
    }

    private void OnBatchCrashed(BatchCrashed crashed)
    {
        if (!ReferenceEquals(crashed.Batch, _runningBatch))
        {
            return;
        }

        _runningBatch = null;
        _model.BatchEnded();
        var cause = Describe(crashed.Error);
        Answer(crashed.Batch, ServeErrors.FailedWhileRunning(_replica.Model, cause, crashed.Error is OperationCanceledException));
        if (_lifecycle.HandingOff)
        {
            Context.Stop(Self);
            return;
        }

        if (!_lifecycle.IsCurrent(crashed.Generation))
        {
            return;
        }

        if (((crashed.Error as AggregateException)?.InnerException ?? crashed.Error) is DeviceFaultException fault)
        {
            // Not reloaded here: the device is broken for this process. The worker restarts the process.
            FailForGood($"device {fault.Device} is broken for this process ({cause}); the worker process restarts");
            Context.System.EventStream.Publish(new ProcessPoisoned(_replica, fault.Device, cause));
            return;
        }

        Fail($"failed while running: {cause}");
    }

    private void BeginHandOff()
    {
        _lifecycle.BeginHandOff();
        _local?.Remove(_replica, Self);
        if (_runningBatch is null)
        {
            Context.Stop(Self);
            return;
        }

        BecomeCurrentState();
    }

    private static void Answer(IEnumerable<Refused> refused)
    {
        foreach (var (queued, error) in refused)
        {
            queued.ReplyTo.Tell(new InferenceFailed(queued.Request.RequestId, error));
        }
    }

    private static void Answer(IEnumerable<QueuedRequest> batch, ServeError error)
    {
        foreach (var queued in batch)
        {
            queued.ReplyTo.Tell(new InferenceFailed(queued.Request.RequestId, error));
        }
    }

    /// <param name="registry">A registry that asked (<see cref="ReportNow"/>); otherwise the proxy.</param>
    private void ReportStatus(IActorRef? registry = null)
    {
        var model = _model.Current;
        _reportedSignature = model?.Signature;
        (registry ?? _registry).Tell(new ReplicaStatusReport(new ReplicaStatus(_replica, _lifecycle.State, _nodeAddress,
            model?.Device ?? string.Empty, _reportedSignature, _lifecycle.Restarts, _lifecycle.LastError, _lifecycle.SinceUtc)
        {
            MemoryBytes = model?.MemoryBytes ?? -1,
        }));
    }

    private static string Describe(Exception error)
    {
        var root = error is AggregateException { InnerException: { } inner } ? inner : error;
        var message = root.Message.Trim();
        var firstLines = string.Join(" ", message.Split('\n').Take(3).Select(l => l.Trim()));
        return firstLines.Length > 500 ? firstLines[..500] + "..." : firstLines;
    }

    private sealed record Loaded(object Generation, ILoadedModel Model);

    private sealed record LoadFailed(object Generation, Exception Error);

    private sealed record RetryLoad(object Generation);

    private sealed record BatchCompleted(object Generation, List<QueuedRequest> Batch, BatchResult Result, long DispatchedTimestamp);

    private sealed record BatchCrashed(object Generation, List<QueuedRequest> Batch, Exception Error);

    private sealed record BatchDelayElapsed
    {
        public static BatchDelayElapsed Instance { get; } = new();
    }

    private sealed record ResolveTick
    {
        public static ResolveTick Instance { get; } = new();
    }

    private sealed record ReportStatusTick
    {
        public static ReportStatusTick Instance { get; } = new();
    }
}

/// <summary>Sent by the shard to its replicas when they must stop (hand-off to another node, or removal).</summary>
public sealed record HandOff
{
    public static HandOff Instance { get; } = new();
}
