using Akka.Actor;
using Serve.Actors.Batching;
using Serve.Actors.Protocol;

namespace Serve.Actors.Models;

/// <summary>A request waiting in a replica's queue; compared by reference (the same request may be sent twice).</summary>
public sealed class QueuedRequest(InferenceRequest request, IActorRef replyTo, long arrivedTimestamp, long deadlineTimestamp)
{
    public InferenceRequest Request { get; } = request;

    public IActorRef ReplyTo { get; } = replyTo;

    /// <summary>When it was admitted, on its queue's <see cref="TimeProvider"/> timestamp scale.</summary>
    public long ArrivedTimestamp { get; } = arrivedTimestamp;

    public long DeadlineTimestamp { get; } = deadlineTimestamp;

    /// <summary>Its decoding, once started (<see cref="ReplicaQueue.PrepareAhead"/> or dispatch).</summary>
    public IPreparedInput? Prepared { get; set; }
}

/// <summary>A request answered with an error instead of running.</summary>
public readonly record struct Refused(QueuedRequest Request, ServeError Error);

/// <summary>
/// What admission did: <see cref="Refusal"/> is the newcomer's answer when it was not queued; either way
/// <see cref="PushedOut"/> is a request that had to leave the full queue to make room.
/// </summary>
public readonly record struct Admission(ServeError? Refusal, Refused? PushedOut)
{
    public static Admission Refuse(ServeError error) => new(error, null);
}

/// <summary>A batch taken from the queue, and the requests met on the way whose deadline had passed.</summary>
public readonly record struct TakenBatch(List<QueuedRequest> Requests, List<Refused> Expired);

/// <summary>
/// A replica's waiting room, without Akka: admission (job_queue_size, each tenant's queue limit and fair
/// share, the deadline), cancellation by request id, decoding one batch ahead, and taking batches in fair
/// order (<see cref="FairQueue{T}"/>). It decides and returns who is answered with what; the actor sends
/// the answers.
/// </summary>
public sealed class ReplicaQueue
{
    private readonly ReplicaId _replica;
    private readonly TimeProvider _time;
    private readonly FairQueue<QueuedRequest> _queue;
    private readonly Dictionary<string, QueuedRequest> _byId = new(StringComparer.Ordinal);

    // Queued requests whose decoding has started (at most one batch of them, see PrepareAhead).
    private readonly HashSet<QueuedRequest> _preparedAhead = [];

    public ReplicaQueue(ReplicaId replica, bool fair, TimeProvider time)
    {
        _replica = replica;
        _time = time;
        _queue = new FairQueue<QueuedRequest>(fair);
    }

    public int Count => _queue.Count;

    public IEnumerable<QueuedRequest> Items => _queue.Items;

    /// <summary>Queued requests whose decoding has started ahead of their batch.</summary>
    public int PreparedAheadCount => _preparedAhead.Count;

    /// <summary>Queues <paramref name="request"/> if its tenant and the queue have room and its deadline is ahead.</summary>
    public Admission Admit(InferenceRequest request, IActorRef replyTo, int capacity)
    {
        var tenant = request.Tenant;
        var admission = _queue.Admit(tenant.Id, tenant.Weight, tenant.QueueLimit, capacity);
        switch (admission.Outcome)
        {
            case AdmissionOutcome.TenantFull:
                return Admission.Refuse(ServeErrors.TenantQueueFull(tenant.Id, _queue.CountOf(tenant.Id), _replica));
            case AdmissionOutcome.QueueFull:
                return Admission.Refuse(ServeErrors.QueueFull(_replica, capacity));
        }

        if (request.Timeout <= TimeSpan.Zero)
        {
            return Admission.Refuse(ServeErrors.DeadlinePassed(_replica.Model));
        }

        Refused? pushedOut = null;
        if (admission.PushOut is { } pushed)
        {
            var owner = pushed.Request.Tenant.Id;
            var held = _queue.CountOf(owner);
            _queue.Remove(pushed);
            Forget(pushed);
            pushedOut = new Refused(pushed, ServeErrors.PushedOut(owner, held, _replica, capacity));
        }

        var arrived = _time.GetTimestamp();
        var deadline = arrived + (long)(request.Timeout.TotalSeconds * _time.TimestampFrequency);
        var queued = new QueuedRequest(request, replyTo, arrived, deadline);
        _queue.Enqueue(tenant.Id, tenant.Weight, queued);
        _byId.TryAdd(request.RequestId, queued);
        return new Admission(null, pushedOut);
    }

    /// <summary>Removes the queued request with <paramref name="requestId"/>; null when it is not queued (running, done or unknown).</summary>
    public QueuedRequest? Cancel(string requestId)
    {
        if (_byId.Remove(requestId, out var queued) && _queue.Remove(queued))
        {
            _preparedAhead.Remove(queued);
            return queued;
        }

        return null;
    }

    /// <summary>What the batching policy says is due, given the oldest request's wait.</summary>
    public BatchDecision Decide(bool deviceBusy, int batchSize, TimeSpan maxDelay)
    {
        var oldestWaited = _queue.Oldest is { } oldest ? _time.GetElapsedTime(oldest.ArrivedTimestamp) : TimeSpan.Zero;
        return BatchingPolicy.Decide(_queue.Count, oldestWaited, deviceBusy, batchSize, maxDelay);
    }

    /// <summary>Takes up to <paramref name="count"/> requests in fair order (a batch may mix tenants), setting aside expired ones.</summary>
    public TakenBatch Take(int count)
    {
        var now = _time.GetTimestamp();
        var taken = new TakenBatch(new List<QueuedRequest>(count), []);
        while (taken.Requests.Count < count && _queue.TryDequeue(out var queued))
        {
            Forget(queued);
            if (queued.DeadlineTimestamp <= now)
            {
                taken.Expired.Add(new Refused(queued, ServeErrors.DeadlinePassed(_replica.Model)));
                continue;
            }

            taken.Requests.Add(queued);
        }

        return taken;
    }

    /// <summary>
    /// Starts decoding the oldest queued requests, at most one batch of them, so decoding overlaps the
    /// batch on the device while a burst of large inputs (images) holds at most two batches decoded per
    /// replica: the one running and the next. The others wait as the bytes they came in and are decoded as
    /// their turn nears, or when they are dispatched.
    /// </summary>
    public void PrepareAhead(int batchSize, Func<InferenceInput, IPreparedInput> prepare)
    {
        var room = batchSize - _preparedAhead.Count;
        foreach (var queued in _queue.Items)
        {
            if (room <= 0)
            {
                return;
            }

            if (queued.Prepared is null)
            {
                queued.Prepared = prepare(queued.Request.Input);
                _preparedAhead.Add(queued);
                room--;
            }
        }
    }

    /// <summary>Empties the queue, every request answered with <paramref name="error"/>.</summary>
    public List<Refused> Drain(ServeError error)
    {
        var refused = _queue.Items.Select(queued => new Refused(queued, error)).ToList();
        _queue.Clear();
        _byId.Clear();
        _preparedAhead.Clear();
        return refused;
    }

    /// <summary>
    /// Forgets a request that left the queue: drops its id from the index, unless the id now names another
    /// request (ids may repeat), and its place among the requests decoding ahead.
    /// </summary>
    private void Forget(QueuedRequest queued)
    {
        _preparedAhead.Remove(queued);
        var id = queued.Request.RequestId;
        if (_byId.TryGetValue(id, out var indexed) && ReferenceEquals(indexed, queued))
        {
            _byId.Remove(id);
        }
    }
}
