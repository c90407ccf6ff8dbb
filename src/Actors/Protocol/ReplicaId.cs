using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Serve.Actors.Protocol;

/// <summary>A model version: the unit that has a definition, a replica count and a default flag.</summary>
public sealed record ModelKey(string Name, string Version)
{
    public override string ToString() => $"{Name}/{Version}";
}

/// <summary>
/// One replica of one model version, and the sharded entity that serves it.
/// The entity id (and shard id) is <c>model/version/replica</c>.
/// </summary>
public sealed record ReplicaId(string Model, string Version, int Index)
{
    public ModelKey Key => new(Model, Version);

    public string EntityId => $"{Model}/{Version}/{Index.ToString(CultureInfo.InvariantCulture)}";

    public override string ToString() => EntityId;

    public static bool TryParse(string entityId, [NotNullWhen(true)] out ReplicaId? id)
    {
        id = null;
        var parts = entityId.Split('/');
        if (parts.Length != 3
            || !ModelNames.IsValid(parts[0])
            || !ModelNames.IsValid(parts[1])
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            return false;
        }

        id = new ReplicaId(parts[0], parts[1], index);
        return true;
    }
}
