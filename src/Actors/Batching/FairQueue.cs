using System.Diagnostics.CodeAnalysis;

namespace Serve.Actors.Batching;

public enum AdmissionOutcome
{
    /// <summary>Queue it; when <see cref="Admission{T}.PushOut"/> is set, that request must leave first.</summary>
    Admitted,

    /// <summary>The tenant already holds as many requests as its own queue limit allows.</summary>
    TenantFull,

    /// <summary>The queue is full and the tenant already holds at least its share of it.</summary>
    QueueFull,
}

/// <param name="PushOut">
/// A queued request of the tenant most over its share, to refuse so that the arriving one fits.
/// </param>
public readonly record struct Admission<T>(AdmissionOutcome Outcome, T? PushOut)
    where T : class;

/// <summary>
/// The requests one replica holds: a FIFO queue per tenant, served by weighted deficit round robin over
/// the tenants that have work. Each request costs 1 and a tenant's quantum is its weight, so while
/// tenants stay backlogged each gets exactly its weight in every round, and a batch may mix tenants.
/// A tenant whose queue empties leaves the round with its deficit (as in DRR), so being idle saves up
/// no burst for later and its share goes to those still waiting.
/// </summary>
/// <remarks>
/// <para>
/// Bounds (<see cref="Admit"/>): the queue holds at most <c>capacity</c> (job_queue_size) requests, and a
/// tenant with a queue limit at most that many. A tenant without one (0) may fill the whole queue while
/// nobody else waits, yet cannot keep others out: when the queue is full, a request from a tenant that
/// would still hold less than its weighted share pushes out the newest request of the tenant most over
/// its share (longest-queue drop, weighted: counts compared as count / weight). A full queue thereby
/// drifts to the weighted split and no further, since a push-out happens only when the arriving tenant
/// stays strictly below the one it takes from. The request pushed out is the victim's newest, so its
/// older requests keep their place, and it is refused at once, so its client can retry. A tenant at or
/// above its share is refused as before.
/// </para>
/// <para>
/// With <c>fair: false</c> requests leave in arrival order across tenants and nothing is pushed out (the
/// behaviour before tenants, kept for comparison); explicit tenant limits still apply.
/// </para>
/// <para>Not thread-safe: its actor owns it.</para>
/// </remarks>
public sealed class FairQueue<T>(bool fair = true)
    where T : class
{
    private readonly Dictionary<string, TenantQueue> _tenants = new(StringComparer.Ordinal);
    private readonly LinkedList<TenantQueue> _round = new();
    private readonly LinkedList<Entry> _arrivals = new();
    private readonly Dictionary<T, Entry> _entries = new(ReferenceEqualityComparer.Instance);

    // The tenant whose turn it is, and whether its quantum for this turn was added yet.
    private LinkedListNode<TenantQueue>? _turn;
    private bool _granted;

    public bool Fair { get; } = fair;

    public int Count => _arrivals.Count;

    /// <summary>The request that has waited longest, of any tenant.</summary>
    public T? Oldest => _arrivals.First?.Value.Item;

    /// <summary>Everything queued, in arrival order.</summary>
    public IEnumerable<T> Items => _arrivals.Select(e => e.Item);

    public int CountOf(string tenant) => _tenants.TryGetValue(tenant, out var queue) ? queue.Entries.Count : 0;

    /// <summary>Whether a request of <paramref name="tenant"/> may join; changes nothing.</summary>
    /// <param name="tenantLimit">The tenant's own bound; 0: none beyond <paramref name="capacity"/>.</param>
    public Admission<T> Admit(string tenant, int weight, int tenantLimit, int capacity)
    {
        var held = CountOf(tenant);
        if (tenantLimit > 0 && held >= tenantLimit)
        {
            return new(AdmissionOutcome.TenantFull, null);
        }

        if (Count < capacity)
        {
            return new(AdmissionOutcome.Admitted, null);
        }

        if (Fair && MostOverShare() is { } victim
            && (long)victim.Entries.Count * Quantum(weight) > (long)(held + 1) * victim.Weight)
        {
            return new(AdmissionOutcome.Admitted, victim.Entries.Last!.Value.Item);
        }

        return new(AdmissionOutcome.QueueFull, null);
    }

    /// <summary>Adds the request behind the tenant's others. Bounds are <see cref="Admit"/>'s job.</summary>
    /// <param name="weight">The tenant's weight from now on (below 1 counts as 1).</param>
    public void Enqueue(string tenant, int weight, T item)
    {
        if (!_tenants.TryGetValue(tenant, out var queue))
        {
            queue = new TenantQueue(tenant);
            queue.InRound = _round.AddLast(queue);
            _tenants.Add(tenant, queue);
        }

        queue.Weight = Quantum(weight);
        var entry = new Entry(item, queue);
        _entries.Add(item, entry);
        entry.InTenant = queue.Entries.AddLast(entry);
        entry.InArrivals = _arrivals.AddLast(entry);
    }

    /// <summary>The next request in fair order (arrival order when not fair).</summary>
    public bool TryDequeue([NotNullWhen(true)] out T? item)
    {
        if (_arrivals.First is not { } first)
        {
            item = null;
            return false;
        }

        var entry = first.Value;
        if (Fair)
        {
            entry = NextFair();
            entry.Tenant.Deficit--;
        }

        Unlink(entry);
        item = entry.Item;
        return true;
    }

    /// <summary>Up to <paramref name="count"/> requests in fair order.</summary>
    public List<T> Dequeue(int count)
    {
        var taken = new List<T>(Math.Min(count, Count));
        while (taken.Count < count && TryDequeue(out var item))
        {
            taken.Add(item);
        }

        return taken;
    }

    /// <summary>Takes a queued request out (cancelled, or pushed out); false when it is not queued.</summary>
    public bool Remove(T item)
    {
        if (!_entries.TryGetValue(item, out var entry))
        {
            return false;
        }

        Unlink(entry);
        return true;
    }

    public void Clear()
    {
        _tenants.Clear();
        _round.Clear();
        _arrivals.Clear();
        _entries.Clear();
        _turn = null;
        _granted = false;
    }

    private static int Quantum(int weight) => Math.Max(1, weight);

    private Entry NextFair()
    {
        while (true)
        {
            if (_turn is null)
            {
                _turn = _round.First!;
                _granted = false;
            }

            var tenant = _turn.Value;
            if (!_granted)
            {
                tenant.Deficit += tenant.Weight;
                _granted = true;
            }

            if (tenant.Deficit >= 1)
            {
                return tenant.Entries.First!.Value;
            }

            _turn = _turn.Next ?? _round.First;
            _granted = false;
        }
    }

    private TenantQueue? MostOverShare()
    {
        TenantQueue? most = null;
        foreach (var tenant in _round)
        {
            if (most is null || (long)tenant.Entries.Count * most.Weight > (long)most.Entries.Count * tenant.Weight)
            {
                most = tenant;
            }
        }

        return most;
    }

    private void Unlink(Entry entry)
    {
        _entries.Remove(entry.Item);
        _arrivals.Remove(entry.InArrivals!);
        var tenant = entry.Tenant;
        tenant.Entries.Remove(entry.InTenant!);
        if (tenant.Entries.Count > 0)
        {
            return;
        }

        // An idle tenant leaves the round and forgets its deficit, so it cannot save up a burst.
        if (_turn == tenant.InRound)
        {
            _turn = tenant.InRound!.Next;
            _granted = false;
        }

        _round.Remove(tenant.InRound!);
        _tenants.Remove(tenant.Id);
    }

    private sealed class TenantQueue(string id)
    {
        public string Id { get; } = id;

        public int Weight { get; set; } = 1;

        public int Deficit { get; set; }

        public LinkedList<Entry> Entries { get; } = new();

        public LinkedListNode<TenantQueue>? InRound { get; set; }
    }

    private sealed class Entry(T item, TenantQueue tenant)
    {
        public T Item { get; } = item;

        public TenantQueue Tenant { get; } = tenant;

        public LinkedListNode<Entry>? InTenant { get; set; }

        public LinkedListNode<Entry>? InArrivals { get; set; }
    }
}
