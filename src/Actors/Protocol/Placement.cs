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

    [GeneratedRegex("^(cpu|cuda):[0-9]{1,3}$", RegexOptions.CultureInvariant)]
    private static partial Regex DevicePattern();
}

/// <summary>One device of a worker: its name, its memory and what is measured in use (-1: not measured).</summary>
public sealed record DeviceCapacity(string Name, long TotalMemoryMb, long UsedMemoryMb);

/// <summary>Worker to registry, every few seconds: who I am and what devices I have.</summary>
/// <param name="Address">The node's cluster address (akka.tcp://serve@host:port).</param>
/// <param name="Name">The name pins use (Serve:Node:Name; host:port by default).</param>
public sealed record NodeInventory(string Address, string Name, DeviceCapacity[] Devices) : IServeMessage
{
    /// <summary>True when a pin names this node: by its name, its address, or the address's host:port.</summary>
    public bool Answers(string pin) =>
        pin == Name || pin == Address || (Uri.TryCreate(Address, UriKind.Absolute, out var uri) && pin == $"{uri.Host}:{uri.Port}");
}

/// <summary>
/// Where the registry placed one replica of a model version. A <paramref name="Retiring"/> replica has been
/// replaced (moved, or placed anew after its pins changed): it takes no new requests and stops once its
/// replacement serves, so a move never leaves a gap.
/// </summary>
public sealed record ReplicaAssignment(int Index, string NodeAddress, string Device, bool Retiring);

/// <summary>Management API to registry: change where a model version's replicas may run, and what each declares.</summary>
public sealed record ChangePlacement(string Model, string Version, ModelPlacement Placement, int DeviceMemoryMb) : IServeMessage;

/// <summary>Persisted: a model version's placement rules changed.</summary>
public sealed record ModelVersionPlaced(ModelKey Key, ModelPlacement Placement, int DeviceMemoryMb) : RegistryEvent;
