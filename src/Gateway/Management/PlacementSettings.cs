using System.Globalization;
using Serve.Actors.Protocol;
using Serve.Archive;

namespace Serve.Gateway.Management;

/// <summary>
/// Placement given with a model: <c>nodes</c> and <c>devices</c> (comma-separated), <c>spread</c> and
/// <c>device_memory_mb</c>, read the same way from management API parameters and <c>--models</c> settings.
/// Null where not given.
/// </summary>
public sealed record PlacementSettings(string[]? Nodes, string[]? Devices, bool? Spread, int? DeviceMemoryMb)
{
    public static readonly string[] Names = ["nodes", "devices", "spread", "device_memory_mb"];

    /// <summary>Nothing given (TorchServe's gRPC register has no placement fields).</summary>
    public static readonly PlacementSettings None = new(null, null, null, null);

    public bool IsEmpty => Nodes is null && Devices is null && Spread is null && DeviceMemoryMb is null;

    /// <summary>Reads the four settings through <paramref name="value"/>; a malformed one is added to <paramref name="problems"/>.</summary>
    public static PlacementSettings Read(Func<string, string?> value, List<string> problems)
    {
        string[]? List(string name) =>
            value(name) is { } text ? text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null;

        bool? spread = null;
        if (value("spread") is { Length: > 0 } spreadText)
        {
            if (bool.TryParse(spreadText, out var parsed))
            {
                spread = parsed;
            }
            else
            {
                problems.Add($"spread must be true or false, not '{spreadText}'");
            }
        }

        int? memory = null;
        if (value("device_memory_mb") is { Length: > 0 } memoryText)
        {
            if (int.TryParse(memoryText, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
            {
                memory = parsed;
            }
            else
            {
                problems.Add($"device_memory_mb must be a whole number of MB, not '{memoryText}'");
            }
        }

        return new PlacementSettings(List("nodes"), List("devices"), spread, memory);
    }

    /// <summary>The placement these settings give over <paramref name="current"/> (what is not given stays).</summary>
    public ModelPlacement Over(ModelPlacement current) =>
        new(Nodes ?? current.Nodes, Devices ?? current.Devices, Spread ?? current.Spread);

    /// <summary>
    /// An archive's model-config.yaml as placement: <c>deviceIds</c> pin the replicas to those devices of
    /// <c>deviceType</c> (gpu: cuda:N, cpu: cpu:N), as TorchServe assigns them.
    /// </summary>
    public static ModelPlacement FromArchive(ArchiveSettings archive) =>
        archive.DeviceIds is { Length: > 0 } ids
            ? new ModelPlacement([], [.. ids.Select(id => $"{(archive.DeviceType == "cpu" ? "cpu" : "cuda")}:{id}")], Spread: false)
            : ModelPlacement.Anywhere;
}
