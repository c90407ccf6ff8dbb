using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serve.Archive;

/// <summary>The <c>model</c> object of TorchServe's MAR-INF/MANIFEST.json.</summary>
public sealed record ManifestModel
{
    [JsonPropertyName("modelName")] public string? ModelName { get; init; }

    [JsonPropertyName("modelVersion")] public string? ModelVersion { get; init; }

    [JsonPropertyName("serializedFile")] public string? SerializedFile { get; init; }

    [JsonPropertyName("handler")] public string? Handler { get; init; }

    /// <summary>An eager model's Python source (model.py): Serve refuses those.</summary>
    [JsonPropertyName("modelFile")] public string? ModelFile { get; init; }

    [JsonPropertyName("configFile")] public string? ConfigFile { get; init; }

    [JsonPropertyName("requirementsFile")] public string? RequirementsFile { get; init; }

    [JsonPropertyName("extensions")] public string? Extensions { get; init; }

    [JsonPropertyName("description")] public string? Description { get; init; }
}

/// <summary>TorchServe's MAR-INF/MANIFEST.json (torch-model-archiver 0.2 and later).</summary>
public sealed record ArchiveManifest
{
    public const string RelativePath = "MAR-INF/MANIFEST.json";

    private static readonly JsonSerializerOptions Options = new()
    {
        MaxDepth = 16,
        AllowTrailingCommas = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    [JsonPropertyName("createdOn")] public string? CreatedOn { get; init; }

    [JsonPropertyName("runtime")] public string? Runtime { get; init; }

    [JsonPropertyName("model")] public ManifestModel Model { get; init; } = new();

    [JsonPropertyName("archiverVersion")] public string? ArchiverVersion { get; init; }

    public static ArchiveManifest Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<ArchiveManifest>(json, Options)
                   ?? throw new ArchiveException($"{RelativePath} is empty");
        }
        catch (JsonException error)
        {
            throw new ArchiveException($"{RelativePath} is not valid: {error.Message}");
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Options);
}
