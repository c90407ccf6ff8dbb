using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using Serve.Actors.Batching;
using Serve.Actors.Hosting;
using Serve.Actors.Protocol;

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
}

/// <summary>
/// One replica of one model version: a sharded entity bound to one device of the node that hosts it.
/// It queues requests per tenant (bounded by job_queue_size and each tenant's queue limit, served fairly
/// by <see cref="FairQueue{T}"/>), forms batches (batch_size, max_batch_delay) and hands
/// them to the device through <see cref="ILoadedModel"/>; results come back as messages, so the mailbox
/// never waits on the device. Load or execution failures restart the model with exponential backoff; a
/// crash loop ends in <see cref="ReplicaState.Failed"/>. Every state change is reported to the registry.
/// </summary>
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
    private readonly FairQueue<Pending> _queue;
    private readonly Dictionary<string, Pending> _queuedById = new(StringComparer.Ordinal);

    // Queued requests whose decoding has started (at most one batch of them, see PrepareAhead).
    private readonly HashSet<Pending> _preparedAhead = [];
    private readonly CancellationTokenSource _lifetime = new();

    private ModelDefinition? _definition;
    private ILoadedModel? _model;
    private ReplicaState _state = ReplicaState.Starting;
    private DateTime _stateSinceUtc = DateTime.UtcNow;
    // Identifies the current load; compared by reference, so completions from an earlier load, or from
    // before an actor restart, never pass for the current one.
    private object _generation = new();
    private int _consecutiveFailures;
    private int _restarts;
    private string? _lastError;
    private List<Pending>? _runningBatch;
    private Task<ILoadedModel>? _loading;
    private ILoadedModel? _retiring;
    private ModelSignature? _reportedSignature;
    private bool _handingOff;
    private string? _plannedDevice;

    public ModelActor(ReplicaId replica, IInferenceBackend backend, IActorRef registry, ModelActorSettings settings, LocalReplicas? local)
    {
        _replica = replica;
        _backend = backend;
        _registry = registry;
        _settings = settings;
        _local = local;
        _queue = new FairQueue<Pending>(settings.FairScheduling);
        _nodeAddress = Cluster.Get(Context.System).SelfAddress.ToString();

        Receive<EnsureReplica>(m =>
        {
            _plannedDevice = m.Device ?? _plannedDevice;
            Adopt(m.Definition);
        });
        Receive<ModelResolved>(OnResolved);
        Receive<InferenceRequest>(Enqueue);
        Receive<CancelInference>(CancelQueued);
        Receive<Loaded>(OnLoaded);
        Receive<LoadFailed>(OnLoadFailed);
        Receive<BatchCompleted>(OnBatchCompleted);
        Receive<BatchCrashed>(OnBatchCrashed);
        Receive<BatchDelayElapsed>(_ => TryDispatch());
        Receive<RetryLoad>(m =>
        {
            if (ReferenceEquals(m.Generation, _generation) && _state == ReplicaState.Restarting)
            {
                StartLoad();
            }
        });
        Receive<ResolveTick>(_ => _registry.Tell(new ResolveModel(_replica.Key)));
        Receive<ReportStatusTick>(_ => ReportStatus());
        Receive<HandOff>(_ => BeginHandOff());
        Receive<StopReplica>(_ =>
        {
            _log.Info("Replica {0}: no longer wanted (scaled down or unregistered); stopping", _replica);
            Context.Parent.Tell(new Passivate(HandOff.Instance));
        });
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
        var reason = $"replica {_replica} stopped (moved to another node or removed); retry the request";
        FailQueued(new ServeError(ServeErrorKind.Unavailable, reason));
        if (_runningBatch is not null)
        {
            Reply(_runningBatch, new ServeError(ServeErrorKind.Unavailable, reason));
        }

        DisposeModel();
        DisposeRetiring();

        // A load still in flight finishes into nothing: free what it loaded.
        _loading?.ContinueWith(
            load => load.Result.DisposeAsync().AsTask(),
            CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        _state = ReplicaState.Stopped;
        ReportStatus();
        _lifetime.Dispose();
    }

    private void Adopt(ModelDefinition definition)
    {
        if (definition.Key != _replica.Key)
        {
            _log.Warning("Replica {0} ignored a definition for {1}", _replica, definition.Key);
            return;
        }

        var previous = _definition;
        _definition = definition;
        Timers.Cancel(ResolveTimer);
        if (previous is null)
        {
            StartLoad();
        }
        else if (!SameModel(previous, definition))
        {
            _log.Info("Replica {0}: model definition changed, reloading", _replica);
            _consecutiveFailures = 0;
            DisposeModel();
            StartLoad();
        }
        else
        {
            // Only serving settings changed (batching, queue size, timeout): they apply from the next batch.
            TryDispatch();
        }
    }

    private void OnResolved(ModelResolved resolved)
    {
        if (resolved.Definition is not null)
        {
            Adopt(resolved.Definition);
        }
        else if (_definition is null)
        {
            _log.Warning("Replica {0}: the registry does not know model {1}; stopping", _replica, _replica.Key);
            FailQueued(ServeErrors.VersionNotFound(_replica.Model, _replica.Version));
            Context.Parent.Tell(new Passivate(HandOff.Instance));
        }
    }

    private static bool SameModel(ModelDefinition a, ModelDefinition b) =>
        a.Source == b.Source && a.Handler == b.Handler && a.LabelsPath == b.LabelsPath && a.VocabPath == b.VocabPath;

    private void StartLoad()
    {
        var generation = _generation = new object();
        SetState(ReplicaState.Loading);
        _log.Info("Replica {0}: loading {1}", _replica, _definition!.Source);
        _loading = _backend.LoadAsync(_replica, _definition, _plannedDevice, _lifetime.Token);
        _loading.PipeTo(
            Self,
            success: model => new Loaded(generation, model),
            failure: error => new LoadFailed(generation, error));
    }

    private void OnLoaded(Loaded loaded)
    {
        if (ReferenceEquals(loaded.Generation, _generation))
        {
            _loading = null;
        }

        if (!ReferenceEquals(loaded.Generation, _generation) || _handingOff)
        {
            _ = loaded.Model.DisposeAsync().AsTask();
            return;
        }

        _model = loaded.Model;
        _log.Info("Replica {0}: ready on {1}", _replica, _model.Device);
        SetState(ReplicaState.Ready);
        TryDispatch();
    }

    private void OnLoadFailed(LoadFailed failed)
    {
        if (ReferenceEquals(failed.Generation, _generation))
        {
            _loading = null;
            if (failed.Error is ModelLoadException { Rejected: true })
            {
                Reject($"model file refused: {Describe(failed.Error)}");
                return;
            }

            Fail($"loading failed: {Describe(failed.Error)}");
        }
    }

    private void Fail(string cause)
    {
        _consecutiveFailures++;
        _lastError = cause;
        DisposeModel();
        FailQueued(new ServeError(ServeErrorKind.Unavailable, $"Model \"{_replica.Model}\" replica {_replica.Index} {cause}"));
        if (_settings.Backoff.GivesUpAfter(_consecutiveFailures))
        {
            _log.Error("Replica {0}: {1}. Failed {2} times in a row; not retrying until its definition changes",
                _replica, cause, _consecutiveFailures);
            SetState(ReplicaState.Failed);
            return;
        }

        var delay = _settings.Backoff.DelayAfter(_consecutiveFailures);
        _log.Error("Replica {0}: {1}. Restarting in {2}", _replica, cause, delay);
        _restarts++;
        SetState(ReplicaState.Restarting);
        Timers.StartSingleTimer(RetryTimer, new RetryLoad(_generation), delay);
    }

    /// <summary>The model file cannot be used: no backoff, no retry, until the definition changes.</summary>
    private void Reject(string cause)
    {
        _lastError = cause;
        DisposeModel();
        FailQueued(new ServeError(ServeErrorKind.Unavailable, $"Model \"{_replica.Model}\" replica {_replica.Index} {cause}"));
        _log.Error("Replica {0}: {1}. Not retrying until its definition changes", _replica, cause);
        SetState(ReplicaState.Rejected);
    }

    private void Enqueue(InferenceRequest request)
    {
        if (_state is ReplicaState.Failed or ReplicaState.Rejected or ReplicaState.Restarting || _handingOff)
        {
            var why = _handingOff ? "is moving to another node" : $"is {_state.ToString().ToLowerInvariant()}: {_lastError}";
            Sender.Tell(new InferenceFailed(request.RequestId,
                new ServeError(ServeErrorKind.Unavailable, $"Model \"{_replica.Model}\" replica {_replica.Index} {why}")));
            return;
        }

        var capacity = _definition?.JobQueueSize ?? ModelDefinition.DefaultJobQueueSize;
        var tenant = request.Tenant;
        var admission = _queue.Admit(tenant.Id, tenant.Weight, tenant.QueueLimit, capacity);
        switch (admission.Outcome)
        {
            case AdmissionOutcome.TenantFull:
                Sender.Tell(new InferenceFailed(request.RequestId, new ServeError(ServeErrorKind.QuotaExceeded,
                    $"Tenant \"{tenant.Id}\" has {_queue.CountOf(tenant.Id)} requests queued for model \"{_replica.Model}\" version {_replica.Version} (its queue limit); try again later")));
                return;
            case AdmissionOutcome.QueueFull:
                Sender.Tell(new InferenceFailed(request.RequestId, new ServeError(ServeErrorKind.Overloaded,
                    $"Model \"{_replica.Model}\" version {_replica.Version} has {capacity} requests queued (job_queue_size); try again later")));
                return;
        }

        if (request.Timeout <= TimeSpan.Zero)
        {
            Sender.Tell(new InferenceFailed(request.RequestId, DeadlinePassed()));
            return;
        }

        if (admission.PushOut is { } pushed)
        {
            PushOut(pushed, capacity);
        }

        var arrived = Stopwatch.GetTimestamp();
        var deadline = arrived + (long)(request.Timeout.TotalSeconds * Stopwatch.Frequency);
        var pending = new Pending(request, Sender, arrived, deadline);
        _queue.Enqueue(tenant.Id, tenant.Weight, pending);
        _queuedById.TryAdd(request.RequestId, pending);
        TryDispatch();
    }

    /// <summary>
    /// Starts decoding the oldest queued requests, at most one batch of them, so decoding overlaps the
    /// batch on the device while a burst of large inputs (images) holds at most two batches decoded per
    /// replica: the one running and the next. The others wait as the bytes they came in and are decoded as
    /// their turn nears, or when they are dispatched.
    /// </summary>
    private void PrepareAhead()
    {
        if (_state != ReplicaState.Ready || _model is null || _definition is null)
        {
            return;
        }

        var room = _definition.BatchSize - _preparedAhead.Count;
        foreach (var pending in _queue.Items)
        {
            if (room <= 0)
            {
                return;
            }

            if (pending.Prepared is null)
            {
                pending.Prepared = _model.Prepare(pending.Request.Input);
                _preparedAhead.Add(pending);
                room--;
            }
        }
    }

    /// <summary>The queue is full and another tenant is owed room: refuse the newest request of the one most over its share.</summary>
    private void PushOut(Pending pending, int capacity)
    {
        var tenant = pending.Request.Tenant.Id;
        var held = _queue.CountOf(tenant);
        _queue.Remove(pending);
        Forget(pending);
        pending.ReplyTo.Tell(new InferenceFailed(pending.Request.RequestId, new ServeError(ServeErrorKind.QuotaExceeded,
            $"Tenant \"{tenant}\" has {held} requests queued for model \"{_replica.Model}\" version {_replica.Version}, more than its share of the full queue ({capacity}, job_queue_size) while other tenants wait; try again later")));
    }

    private void CancelQueued(CancelInference cancel)
    {
        if (_queuedById.Remove(cancel.RequestId, out var pending) && _queue.Remove(pending))
        {
            _preparedAhead.Remove(pending);
            pending.ReplyTo.Tell(new InferenceFailed(cancel.RequestId,
                new ServeError(ServeErrorKind.Cancelled, "The client cancelled the request before it ran")));
        }
    }

    /// <summary>
    /// Forgets a request that left the queue: drops its id from the index, unless the id now names another
    /// request (ids may repeat), and its place among the requests decoding ahead.
    /// </summary>
    private void Forget(Pending pending)
    {
        _preparedAhead.Remove(pending);
        var id = pending.Request.RequestId;
        if (_queuedById.TryGetValue(id, out var indexed) && ReferenceEquals(indexed, pending))
        {
            _queuedById.Remove(id);
        }
    }

    /// <summary>Dispatches what the batching policy says is due, then starts decoding what comes next.</summary>
    private void TryDispatch()
    {
        DispatchDue();
        PrepareAhead();
    }

    private void DispatchDue()
    {
        if (_state != ReplicaState.Ready || _model is null || _definition is null)
        {
            return;
        }

        while (true)
        {
            var oldestWaited = _queue.Oldest is { } oldest
                ? Stopwatch.GetElapsedTime(oldest.ArrivedTimestamp)
                : TimeSpan.Zero;
            var decision = BatchingPolicy.Decide(_queue.Count, oldestWaited, _runningBatch is not null,
                _definition.BatchSize, TimeSpan.FromMilliseconds(_definition.MaxBatchDelayMs));
            switch (decision.Action)
            {
                case BatchAction.Wait:
                    if (!Timers.IsTimerActive(BatchTimer))
                    {
                        Timers.StartSingleTimer(BatchTimer, BatchDelayElapsed.Instance, decision.Wait);
                    }

                    return;
                case BatchAction.Dispatch:
                    Timers.Cancel(BatchTimer);
                    if (Dispatch(decision.Count))
                    {
                        return;
                    }

                    // Every request taken had expired; decide again with what is left.
                    continue;
                default:
                    return;
            }
        }
    }

    private bool Dispatch(int count)
    {
        var now = Stopwatch.GetTimestamp();
        var batch = new List<Pending>(count);
        // In fair order, so a batch may mix tenants.
        while (batch.Count < count && _queue.TryDequeue(out var pending))
        {
            Forget(pending);
            if (pending.DeadlineTimestamp <= now)
            {
                pending.ReplyTo.Tell(new InferenceFailed(pending.Request.RequestId, DeadlinePassed()));
                continue;
            }

            batch.Add(pending);
        }

        if (batch.Count == 0)
        {
            return false;
        }

        _runningBatch = batch;
        var generation = _generation;
        var dispatched = Stopwatch.GetTimestamp();
        var model = _model!;
        var inputs = batch.Select(p => p.Prepared ?? model.Prepare(p.Request.Input)).ToArray();
        model.InferAsync(inputs, _lifetime.Token).PipeTo(
            Self,
            success: result => new BatchCompleted(generation, batch, result, dispatched),
            failure: error => new BatchCrashed(generation, batch, error));
        return true;
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
        DisposeRetiring();

        _consecutiveFailures = 0;
        var device = _model?.Device ?? string.Empty;
        for (var i = 0; i < outcomes.Count; i++)
        {
            var pending = completed.Batch[i];
            var requestId = pending.Request.RequestId;
            object reply = outcomes[i] switch
            {
                InferenceOutcome.Success s when SizeOf(s.Output) > _settings.MaxReplyBytes => new InferenceFailed(requestId,
                    new ServeError(ServeErrorKind.ResourceExhausted,
                        $"The answer is {SizeOf(s.Output)} bytes, more than the {_settings.MaxReplyBytes} a message between nodes can carry (Serve:Cluster:MaximumFrameSizeBytes)")),
                InferenceOutcome.Success s => new InferenceSucceeded(requestId, s.Output, new InferenceTiming(
                    QueueMicros: (long)Stopwatch.GetElapsedTime(pending.ArrivedTimestamp, completed.DispatchedTimestamp).TotalMicroseconds,
                    DeviceMicros: (long)completed.Result.DeviceTime.TotalMicroseconds,
                    BatchSize: completed.Batch.Count,
                    Replica: _replica.EntityId,
                    Device: device)),
                InferenceOutcome.Failure f => new InferenceFailed(requestId, f.Error),
                _ => new InferenceFailed(requestId, new ServeError(ServeErrorKind.Internal, "unknown outcome")),
            };
            pending.ReplyTo.Tell(reply);
        }

        if (_handingOff)
        {
            Context.Stop(Self);
            return;
        }

        // A model may learn its signature from its first forward pass (TorchScript does not declare it).
        if (_model is not null && _model.Signature != _reportedSignature)
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
        DisposeRetiring();
        var cause = Describe(crashed.Error);
        var kind = crashed.Error is OperationCanceledException ? ServeErrorKind.Unavailable : ServeErrorKind.ModelFailed;
        Reply(crashed.Batch, new ServeError(kind, $"Model \"{_replica.Model}\" failed while running: {cause}"));
        if (_handingOff)
        {
            Context.Stop(Self);
            return;
        }

        if (ReferenceEquals(crashed.Generation, _generation))
        {
            Fail($"failed while running: {cause}");
        }
    }

    private void BeginHandOff()
    {
        _handingOff = true;
        _local?.Remove(_replica, Self);
        if (_runningBatch is null)
        {
            Context.Stop(Self);
        }
    }

    private void FailQueued(ServeError error)
    {
        foreach (var pending in _queue.Items)
        {
            pending.ReplyTo.Tell(new InferenceFailed(pending.Request.RequestId, error));
        }

        _queue.Clear();
        _queuedById.Clear();
        _preparedAhead.Clear();
    }

    private static void Reply(IEnumerable<Pending> batch, ServeError error)
    {
        foreach (var pending in batch)
        {
            pending.ReplyTo.Tell(new InferenceFailed(pending.Request.RequestId, error));
        }
    }

    private ServeError DeadlinePassed() => new(ServeErrorKind.DeadlineExceeded,
        $"The request's deadline passed while it waited for model \"{_replica.Model}\"");

    /// <summary>
    /// Lets go of the model. While a batch of it is still decoding or running it is retired instead and
    /// freed when that batch ends, so a reload never pulls the model out from under a batch.
    /// </summary>
    private void DisposeModel()
    {
        if (_model is null)
        {
            return;
        }

        var model = _model;
        _model = null;
        if (_runningBatch is null)
        {
            _ = model.DisposeAsync().AsTask();
            return;
        }

        DisposeRetiring();
        _retiring = model;
    }

    private void DisposeRetiring()
    {
        if (_retiring is not null)
        {
            _ = _retiring.DisposeAsync().AsTask();
            _retiring = null;
        }
    }

    private void SetState(ReplicaState state)
    {
        if (_state != state)
        {
            _state = state;
            _stateSinceUtc = DateTime.UtcNow;
        }

        ReportStatus();
    }

    private void ReportStatus()
    {
        _reportedSignature = _model?.Signature;
        _registry.Tell(new ReplicaStatusReport(new ReplicaStatus(_replica, _state, _nodeAddress,
            _model?.Device ?? string.Empty, _reportedSignature, _restarts, _lastError, _stateSinceUtc)
        {
            MemoryBytes = _model?.MemoryBytes ?? -1,
        }));
    }

    private static long SizeOf(InferenceOutput output) => output switch
    {
        DocumentOutput document => document.Body.LongLength,
        TensorOutput tensors => tensors.Tensors.Sum(t => t.Data.LongLength),
        _ => 0,
    };

    private static string Describe(Exception error)
    {
        var root = error is AggregateException { InnerException: { } inner } ? inner : error;
        var message = root.Message.Trim();
        var firstLines = string.Join(" ", message.Split('\n').Take(3).Select(l => l.Trim()));
        return firstLines.Length > 500 ? firstLines[..500] + "..." : firstLines;
    }

    /// <summary>A queued request; compared by reference (the same request may be sent twice).</summary>
    private sealed class Pending(InferenceRequest request, IActorRef replyTo, long arrivedTimestamp, long deadlineTimestamp)
    {
        public InferenceRequest Request { get; } = request;

        public IActorRef ReplyTo { get; } = replyTo;

        public long ArrivedTimestamp { get; } = arrivedTimestamp;

        public long DeadlineTimestamp { get; } = deadlineTimestamp;

        /// <summary>Its decoding, once started (<see cref="PrepareAhead"/> or dispatch).</summary>
        public IPreparedInput? Prepared { get; set; }
    }

    private sealed record Loaded(object Generation, ILoadedModel Model);

    private sealed record LoadFailed(object Generation, Exception Error);

    private sealed record RetryLoad(object Generation);

    private sealed record BatchCompleted(object Generation, List<Pending> Batch, BatchResult Result, long DispatchedTimestamp);

    private sealed record BatchCrashed(object Generation, List<Pending> Batch, Exception Error);

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
