using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Serve.Archive;

/// <summary>
/// The serving settings of TorchServe's model-config.yaml that Serve applies (each null when the file does
/// not say). Other top-level keys are for TorchServe's Python handlers and are left alone, as TorchServe's
/// frontend leaves them.
/// </summary>
public sealed record ArchiveSettings
{
    public static readonly ArchiveSettings None = new();

    public int? MinWorkers { get; init; }

    public int? MaxWorkers { get; init; }

    public int? BatchSize { get; init; }

    public int? MaxBatchDelay { get; init; }

    public int? ResponseTimeout { get; init; }

    public int? StartupTimeout { get; init; }

    public int? JobQueueSize { get; init; }

    /// <summary><c>cpu</c> or <c>gpu</c>.</summary>
    public string? DeviceType { get; init; }

    public int[]? DeviceIds { get; init; }

    /// <summary>
    /// Serve's own key: device memory one replica needs, in MiB (<c>deviceMemoryMb</c>), so placement never
    /// over-commits a device.
    /// </summary>
    public long? DeviceMemoryMb { get; init; }

    /// <summary>Reads model-config.yaml; a value of the wrong type is an <see cref="ArchiveException"/> that names it.</summary>
    public static ArchiveSettings Parse(string yaml, string fileName = "model-config.yaml")
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException error)
        {
            throw new ArchiveException($"{fileName} is not valid YAML: {error.Message}");
        }

        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" })
        {
            return None;
        }

        if (stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ArchiveException($"{fileName} must be a mapping of settings (minWorkers: 1, batchSize: 4, ...)");
        }

        var values = root.Children
            .Where(c => c.Key is YamlScalarNode { Value: not null })
            .ToDictionary(c => ((YamlScalarNode)c.Key).Value!, c => c.Value, StringComparer.Ordinal);

        int? Int(string key)
        {
            if (!values.TryGetValue(key, out var node))
            {
                return null;
            }

            return node is YamlScalarNode { Value: { } text } && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
                ? value
                : throw new ArchiveException($"{fileName}: {key} must be an integer");
        }

        string? DeviceType()
        {
            if (!values.TryGetValue("deviceType", out var node))
            {
                return null;
            }

            return node is YamlScalarNode { Value: "cpu" or "gpu" } scalar
                ? scalar.Value
                : throw new ArchiveException($"{fileName}: deviceType must be cpu or gpu");
        }

        int[]? DeviceIds()
        {
            if (!values.TryGetValue("deviceIds", out var node))
            {
                return null;
            }

            if (node is not YamlSequenceNode list)
            {
                throw new ArchiveException($"{fileName}: deviceIds must be a list of GPU indices, e.g. [0, 1]");
            }

            return [.. list.Children.Select(item =>
                item is YamlScalarNode { Value: { } text } && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                    ? id
                    : throw new ArchiveException($"{fileName}: deviceIds must be a list of GPU indices, e.g. [0, 1]"))];
        }

        return new ArchiveSettings
        {
            MinWorkers = Int("minWorkers"),
            MaxWorkers = Int("maxWorkers"),
            BatchSize = Int("batchSize"),
            MaxBatchDelay = Int("maxBatchDelay"),
            ResponseTimeout = Int("responseTimeout"),
            StartupTimeout = Int("startupTimeout"),
            JobQueueSize = Int("jobQueueSize"),
            DeviceType = DeviceType(),
            DeviceIds = DeviceIds(),
            DeviceMemoryMb = Int("deviceMemoryMb"),
        };
    }
}
