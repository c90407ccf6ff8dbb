using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

/// <summary>The catalog every node reads, projected from the registry's desired state, plan and observations.</summary>
public static class CatalogProjection
{
    /// <param name="replanPending">True while planning waits (a worker settles): the plan is older than the desired state.</param>
    public static CatalogSnapshot Project(
        string incarnation, long revision, DesiredState desired, PlanBook plans, ObservedState observed, bool replanPending)
    {
        var entries = desired.Models
            .OrderBy(d => d.Name, StringComparer.Ordinal)
            .ThenBy(d => d.Version, StringComparer.Ordinal)
            .Select(d =>
            {
                var plan = plans.PlanOf(d.Key);
                return new CatalogEntry(
                    d,
                    desired.IsDefault(d),
                    [.. plan.Assignments.Select(a => observed.StatusOf(new ReplicaId(d.Name, d.Version, a.Index))).OfType<ReplicaStatus>()])
                {
                    Assignments = plan.Assignments,
                    Unplaced = plan.Unplaced,
                };
            })
            .ToArray();
        return new CatalogSnapshot(incarnation, revision, entries)
        {
            Nodes = [.. observed.Nodes.OrderBy(n => n.Address, StringComparer.Ordinal)],
            Planned = plans.Planned,
            ReplanPending = replanPending,
            Tenants = [.. desired.Tenants],
        };
    }
}
