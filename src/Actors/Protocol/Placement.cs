// Workers and registry: devices and hosted replicas; placement rules and their commands.

using System.Text.RegularExpressions;

namespace Serve.Actors.Protocol;

/// <summary>
/// Where a model version's replicas may run: pinned to worker nodes (by name or address) and/or to devices
/// (<c>cuda:0</c>, <c>cpu:1</c>), and whether they must spread (at most one replica per node). Empty lists
/// mean anywhere.
/// </summary>
public sealed partial record ModelPlacement(string[] Nodes, string[] Devices, bool Spread)
{
    public static ModelPlacement Anywhere { get; } = new([], [], false);

    public bool IsAnywhere => Nodes.Length == 0 && Devices.Length == 0 && !Spread;

    public bool AllowsNode(NodeInventory node) => Nodes.Length == 0 || Nodes.Any(node.Answers);

    public bool AllowsDevice(string device) => Devices.Length == 0 || Devices.Contains(device, StringComparer.Ordinal);

    public IEnumerable<string> Problems()
    {
        foreach (var device in Devices.Where(d => !DevicePattern().IsMatch(d)))
        {
            yield return $"device '{device}' is not a device name: use cuda:N or cpu:N";
        }

        foreach (var node in Nodes.Where(n => n.Length is 0 or > 256 || n.Any(char.IsWhiteSpace)))
        {
            yield return $"node '{node}' is not a node name or address";
        }
    }

    public bool Equals(ModelPlacement? other) =>
        other is not null && Spread == other.Spread && Nodes.SequenceEqual(other.Nodes) && Devices.SequenceEqual(other.Devices);

    public override int GetHashCode() => HashCode.Combine(Spread, Nodes.Length, Devices.Length);

    public override string ToString() =>
        IsAnywhere
            ? "anywhere"
            : string.Join("; ", new[]
            {
                Nodes.Length > 0 ? $"nodes {string.Join(", ", Nodes)}" : null,
                Devices.Length > 0 ? $"devices {string.Join(", ", Devices)}" : null,
                Spread ? "one replica per node" : null,
            }.OfType<string>());

    [GeneratedRegex(@"^(cpu|cuda):[0-9]{1,3}\z", RegexOptions.CultureInvariant)]
    private static partial Regex DevicePattern();
}

/// <summary>One device of a worker: its name, its memory and what is measured in use (-1: not measured).</summary>
public sealed record DeviceCapacity(string Name, long TotalMemoryMb, long UsedMemoryMb);

/// <summary>Worker to registry, every few seconds: who I am and what devices I have.</summary>
/// <param name="Address">The node's cluster address (akka.tcp://serve@host:port).</param>
/// <param name="Name">The name pins use (Serve:Node:Name; host:port by default).</param>
public sealed record NodeInventory(string Address, string Name, DeviceCapacity[] Devices) : IServeMessage
{
    /// <summary>The replicas loaded on this node and their devices: a registry that takes over adopts them
    /// where they run instead of placing them anew.</summary>
    public HostedReplica[] Hosted { get; init; } = [];

    /// <summary>Same node, name and devices (the in-use figures and hosted replicas may differ).</summary>
    public bool SameDevices(NodeInventory other) =>
        Address == other.Address && Name == other.Name
        && Devices.Select(d => (d.Name, d.TotalMemoryMb)).SequenceEqual(other.Devices.Select(d => (d.Name, d.TotalMemoryMb)));

    /// <summary>True when a pin names this node: by its name, its address, or the address's host:port.</summary>
    public bool Answers(string pin) =>
        pin == Name || pin == Address || (Uri.TryCreate(Address, UriKind.Absolute, out var uri) && pin == $"{uri.Host}:{uri.Port}");
}

/// <summary>
/// Registry to each worker's <see cref="Placement.InventoryReporter"/> when it starts (it took over from
/// another gateway, or the cluster is new): report the devices, the hosted replicas and their states now,
/// straight to the sender. Otherwise the registry learns them at the next interval, through proxies that
/// find a new singleton only a second or more after it starts.
/// </summary>
public sealed record ReportNow : IServeMessage
{
    public static ReportNow Instance { get; } = new();
}

/// <summary>A replica a worker holds, on which device.</summary>
public sealed record HostedReplica(ReplicaId Replica, string Device);

/// <summary>
/// Where the registry placed one replica of a model version. A <paramref name="Retiring"/> replica has been
/// replaced (moved, or placed anew after its pins changed): it takes no new requests and stops once its
/// replacement serves, so a move never leaves a gap.
/// </summary>
public sealed record ReplicaAssignment(int Index, string NodeAddress, string Device, bool Retiring);

/// <summary>
/// Management API to registry: change where a model version's replicas may run, and what each declares.
/// Only what is given changes (merged by the registry, so concurrent changes of different settings both
/// land): null lists, <paramref name="Spread"/> -1 and <paramref name="DeviceMemoryMb"/> -1 mean "as it is".
/// </summary>
public sealed record ChangePlacement(string Model, string Version, string[]? Nodes, string[]? Devices, int Spread, int DeviceMemoryMb)
    : IServeMessage
{
    public (ModelPlacement Placement, int DeviceMemoryMb) Over(ModelPlacement placement, int deviceMemoryMb) =>
        (new ModelPlacement(Nodes ?? placement.Nodes, Devices ?? placement.Devices, Spread < 0 ? placement.Spread : Spread == 1),
            DeviceMemoryMb < 0 ? deviceMemoryMb : DeviceMemoryMb);
}

/// <summary>Persisted: a model version's placement rules changed.</summary>
public sealed record ModelVersionPlaced(ModelKey Key, ModelPlacement Placement, int DeviceMemoryMb) : RegistryEvent;
