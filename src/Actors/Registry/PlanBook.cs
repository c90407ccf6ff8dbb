using Serve.Actors.Placement;
using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

/// <summary>
/// What a change of the plan asks of the cluster: replicas to wake on their planned device and replicas to
/// stop; <see cref="Changed"/> when the catalog should be published again; <see cref="NewlyUnplaced"/>:
/// why some replicas cannot be placed, for reasons not logged before.
/// </summary>
public sealed record PlanChange(IReadOnlyList<EnsureReplica> Wake, IReadOnlyList<StopReplica> Stop, bool Changed, IReadOnlyList<string> NewlyUnplaced);

/// <summary>
/// Where every replica of every model version goes, without Akka: the plan per model version
/// (<see cref="PlacementPlanner"/> decides it), what the plan learns from where replicas really run
/// (adopt), replaced replicas that may retire, and nodes that left (forget). Operations return the commands
/// to send; the registry sends them.
/// </summary>
public sealed class PlanBook
{
    private static readonly ModelPlan NoPlan = new([], null);

    private Dictionary<ModelKey, ModelPlan> _plans = [];

    // One past the highest replica index used per model version in this incarnation: an index given up
    // (scaled down, retired) is not taken again while sharding may still keep its shard on another node.
    private readonly Dictionary<ModelKey, int> _nextIndex = [];

    // Replaced replicas whose retirement is scheduled (their grace period runs).
    private readonly HashSet<ReplicaId> _retiring = [];

    /// <summary>False until the first plan: the catalog says so, and readers keep a planned catalog from an earlier registry meanwhile.</summary>
    public bool Planned { get; private set; }

    public IEnumerable<ModelKey> Keys => _plans.Keys;

    public ModelPlan PlanOf(ModelKey key) => _plans.GetValueOrDefault(key) ?? NoPlan;

    public ReplicaAssignment? AssignmentOf(ReplicaId replica) =>
        _plans.GetValueOrDefault(replica.Key)?.Assignments.FirstOrDefault(a => a.Index == replica.Index);

    public int ActiveCount(ModelKey key) => _plans.GetValueOrDefault(key)?.Active.Count() ?? 0;

    /// <summary>
    /// Plans placement again from the desired models and the workers' devices, keeping current assignments
    /// where they may stay: newly placed replicas are woken, replicas no longer planned are stopped.
    /// </summary>
    public PlanChange Replan(DesiredState desired, IReadOnlyCollection<NodeInventory> nodes)
    {
        var before = _plans;
        var firstPlan = !Planned;
        _plans = PlacementPlanner.Plan([.. desired.Models], [.. nodes], CurrentAssignments(), _nextIndex);
        Planned = true;
        foreach (var (key, plan) in _plans)
        {
            foreach (var assignment in plan.Assignments)
            {
                NoteIndex(new ReplicaId(key.Name, key.Version, assignment.Index));
            }
        }

        var stop = new List<StopReplica>();
        foreach (var (key, plan) in before)
        {
            var kept = _plans.GetValueOrDefault(key)?.Assignments.Select(a => a.Index).ToHashSet() ?? [];
            foreach (var gone in plan.Assignments.Where(a => !kept.Contains(a.Index)))
            {
                var replica = new ReplicaId(key.Name, key.Version, gone.Index);
                stop.Add(new StopReplica(replica));
                _retiring.Remove(replica);
            }
        }

        var wake = new List<EnsureReplica>();
        var unplaced = new List<string>();
        var changed = firstPlan || before.Count != _plans.Count;
        foreach (var (key, plan) in _plans)
        {
            var previous = before.GetValueOrDefault(key);
            if (plan.Unplaced is { } why && why != previous?.Unplaced)
            {
                unplaced.Add(why);
            }

            changed |= previous is null || previous.Unplaced != plan.Unplaced || !previous.Assignments.SequenceEqual(plan.Assignments);
            var definition = desired.Find(key)!;
            foreach (var added in plan.Active.Where(a => previous?.Assignments.Contains(a) != true))
            {
                wake.Add(new EnsureReplica(new ReplicaId(key.Name, key.Version, added.Index), definition, added.Device));
            }
        }

        return new PlanChange(wake, stop, changed, unplaced);
    }

    /// <summary>
    /// Why <paramref name="trial"/>, the desired state after a change to the model versions in
    /// <paramref name="changed"/>, would not fit on the workers; null when it fits. Refused: a change that
    /// leaves more wanted replicas without a place than before, or placement rules (<paramref name="placed"/>)
    /// that some replica cannot follow. A scale down never is.
    /// </summary>
    public string? WhyNoRoom(DesiredState trial, IReadOnlyCollection<ModelKey> changed, IReadOnlyCollection<ModelKey> placed, IReadOnlyCollection<NodeInventory> nodes)
    {
        var plans = PlacementPlanner.Plan([.. trial.Models], [.. nodes], CurrentAssignments(), _nextIndex);
        return changed.Select(key =>
        {
            var after = plans.GetValueOrDefault(key);
            var shortfallBefore = _plans.GetValueOrDefault(key)?.Shortfall ?? 0;
            return after?.Unplaced is { } why && (after.Shortfall > shortfallBefore || placed.Contains(key)) ? why : null;
        }).OfType<string>().FirstOrDefault();
    }

    /// <summary>
    /// Replaced replicas whose model version's active replicas all serve, not yet scheduled to retire: the
    /// caller retires each after a grace period (<see cref="Retire"/>).
    /// </summary>
    public IReadOnlyList<ReplicaId> DueToRetire(ObservedState observed)
    {
        var due = new List<ReplicaId>();
        foreach (var (key, plan) in _plans)
        {
            var replaced = plan.Assignments.Where(a => a.Retiring).ToList();
            if (replaced.Count == 0 || !AllActiveServe(key, plan, observed))
            {
                continue;
            }

            foreach (var assignment in replaced)
            {
                var replica = new ReplicaId(key.Name, key.Version, assignment.Index);
                if (_retiring.Add(replica))
                {
                    due.Add(replica);
                }
            }
        }

        return due;
    }

    /// <summary>
    /// A replaced replica's grace period ended: it leaves the plan and is stopped, unless its replacement
    /// stopped serving meanwhile (then it stays for now; null).
    /// </summary>
    public StopReplica? Retire(ReplicaId replica, ObservedState observed)
    {
        _retiring.Remove(replica);
        if (_plans.GetValueOrDefault(replica.Key) is not { } plan || AssignmentOf(replica) is not { Retiring: true }
            || !AllActiveServe(replica.Key, plan, observed))
        {
            return null;
        }

        _plans[replica.Key] = plan with { Assignments = [.. plan.Assignments.Where(a => a.Index != replica.Index)] };
        return new StopReplica(replica);
    }

    /// <summary>The plan follows where <paramref name="replica"/> really runs (sharding or the node chose otherwise, or it ran before this registry).</summary>
    public void Adopt(ReplicaId replica, string nodeAddress, string device)
    {
        var plan = PlanOf(replica.Key);
        var where = new ReplicaAssignment(replica.Index, nodeAddress, device, Retiring: false);
        _plans[replica.Key] = plan with { Assignments = [.. plan.Assignments.Where(a => a.Index != where.Index).Append(where).OrderBy(a => a.Index)] };
        NoteIndex(replica);
    }

    /// <summary>
    /// Replicas a worker holds that the plan does not know (they ran before this registry took over) are
    /// adopted where they run while their model version needs them; true when any was.
    /// </summary>
    public bool AdoptHosted(NodeInventory inventory, DesiredState desired)
    {
        var adopted = false;
        foreach (var hosted in inventory.Hosted)
        {
            if (desired.Find(hosted.Replica.Key) is not { } definition || AssignmentOf(hosted.Replica) is not null
                || ActiveCount(hosted.Replica.Key) >= definition.Replicas)
            {
                continue;
            }

            Adopt(hosted.Replica, inventory.Address, hosted.Device);
            adopted = true;
        }

        return adopted;
    }

    /// <summary>
    /// A node unreachable for a while (likely dead, not yet downed): its active replicas become replaced ones,
    /// so the next plan places replacements, under new indices, on the nodes still reachable. A replica has
    /// one index and so one shard: a replacement never duplicates it. Returns the replicas replaced.
    /// </summary>
    public IReadOnlyList<ReplicaId> ReplaceOn(string address)
    {
        var replaced = new List<ReplicaId>();
        foreach (var (key, plan) in _plans.ToList())
        {
            var on = plan.Assignments.Where(a => a.NodeAddress == address && !a.Retiring).ToList();
            if (on.Count == 0)
            {
                continue;
            }

            replaced.AddRange(on.Select(a => new ReplicaId(key.Name, key.Version, a.Index)));
            _plans[key] = plan with
            {
                Assignments = [.. plan.Assignments.Select(a => a.NodeAddress == address ? a with { Retiring = true } : a)],
            };
        }

        return replaced;
    }

    /// <summary>
    /// The node is reachable again: of its replicas replaced by <see cref="ReplaceOn"/>, those whose model
    /// version still lacks active replicas (no room was found for a replacement) serve again; the others
    /// retire once their replacements serve, as after any move.
    /// </summary>
    public void Reinstate(string address, IEnumerable<ReplicaId> replaced, DesiredState desired)
    {
        foreach (var replica in replaced)
        {
            if (_plans.GetValueOrDefault(replica.Key) is not { } plan || desired.Find(replica.Key) is not { } definition
                || AssignmentOf(replica) is not { Retiring: true } assignment || assignment.NodeAddress != address
                || plan.Active.Count() >= definition.Replicas)
            {
                continue;
            }

            _retiring.Remove(replica);
            _plans[replica.Key] = plan with
            {
                Assignments = [.. plan.Assignments.Select(a => a.Index == replica.Index ? a with { Retiring = false } : a)],
            };
        }
    }

    /// <summary>A node left: its replicas leave the plan (to be placed again); returns how many it held.</summary>
    public int ForgetNode(string address)
    {
        var placed = 0;
        foreach (var (key, plan) in _plans.ToList())
        {
            placed += plan.Assignments.Count(a => a.NodeAddress == address);
            _plans[key] = plan with { Assignments = [.. plan.Assignments.Where(a => a.NodeAddress != address)] };
        }

        return placed;
    }

    /// <summary>Wakes every placed, active replica (sharding starts it again wherever its shard lives).</summary>
    public IEnumerable<EnsureReplica> WakeAll(DesiredState desired)
    {
        foreach (var (key, plan) in _plans)
        {
            if (desired.Find(key) is not { } definition)
            {
                continue;
            }

            foreach (var assignment in plan.Active)
            {
                yield return new EnsureReplica(new ReplicaId(key.Name, key.Version, assignment.Index), definition, assignment.Device);
            }
        }
    }

    private static bool AllActiveServe(ModelKey key, ModelPlan plan, ObservedState observed) =>
        plan.Active.All(a => observed.IsServing(new ReplicaId(key.Name, key.Version, a.Index), a));

    private Dictionary<ModelKey, ReplicaAssignment[]> CurrentAssignments() =>
        _plans.ToDictionary(p => p.Key, p => p.Value.Assignments);

    private void NoteIndex(ReplicaId replica) =>
        _nextIndex[replica.Key] = Math.Max(_nextIndex.GetValueOrDefault(replica.Key), replica.Index + 1);
}
