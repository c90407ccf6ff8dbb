using System.Globalization;
using Microsoft.AspNetCore.WebUtilities;
using Serve.Actors.Protocol;
using Serve.Archive;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Management;

/// <summary>
/// Turns the start-up configuration (TorchServe's <c>--model-store</c> and <c>--models</c>, the
/// <c>Serve:Models</c> section, the embedded default model) into model definitions, reporting every
/// problem at once.
/// </summary>
public static class StartupModels
{
    public static IReadOnlyList<ModelDefinition> Build(GatewayOptions options, out IReadOnlyList<string> problems)
    {
        var found = new List<string>();
        var definitions = new List<ModelDefinition>();
        if (!string.IsNullOrWhiteSpace(options.LoadModels))
        {
            definitions.AddRange(FromLoadModels(options, found));
        }

        foreach (var model in options.Models)
        {
            if (FromSection(model, options, found) is { } definition)
            {
                definitions.Add(definition);
            }
        }

        if (definitions.Count == 0 && found.Count == 0 && options.DefaultModel.Enabled)
        {
            definitions.Add(DefaultModel(options));
        }

        foreach (var definition in definitions)
        {
            found.AddRange(definition.Validate().Select(p => $"{definition.Key}: {p}"));
        }

        found.AddRange(definitions.GroupBy(d => d.Key).Where(g => g.Count() > 1).Select(g => $"{g.Key} is configured more than once"));
        problems = found;
        return definitions;
    }

    /// <summary>
    /// The embedded default model: torchvision's resnet18 with weights seeded from 0 (its predictions mean
    /// nothing) unless real weights are configured, served by the image classifier. Batches of up to 8
    /// without waiting: a lone request runs at once, requests that queue behind a running batch go together.
    /// </summary>
    public static ModelDefinition DefaultModel(GatewayOptions options) => new(
        options.DefaultModel.Name,
        "1.0",
        new BuiltInSource("resnet18", options.DefaultModel.Weights is { } w ? Path.GetFullPath(w) : null, Seed: 0, []),
        BuiltInHandlers.ImageClassifier,
        Replicas: Math.Max(1, options.DefaultWorkersPerModel),
        BatchSize: 8,
        MaxBatchDelayMs: 0,
        JobQueueSize: options.JobQueueSize,
        ResponseTimeoutSeconds: options.DefaultResponseTimeout,
        LabelsPath: options.DefaultModel.Labels is { } l ? Path.GetFullPath(l) : null);

    private static IEnumerable<ModelDefinition> FromLoadModels(GatewayOptions options, List<string> problems)
    {
        var text = options.LoadModels!.Trim();
        if (text.Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            if (options.ModelStore is null || !Directory.Exists(options.ModelStore))
            {
                problems.Add("--models all needs an existing --model-store directory");
                yield break;
            }

            foreach (var entry in Directory.EnumerateFileSystemEntries(options.ModelStore).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(entry);
                var isModel = Directory.Exists(entry)
                    ? File.Exists(Path.Combine(entry, ArchiveManifest.RelativePath))
                    : ModelFiles.TorchScriptExtensions.Contains(Path.GetExtension(entry), StringComparer.OrdinalIgnoreCase)
                      || Path.GetExtension(entry).Equals(ModelFiles.ArchiveExtension, StringComparison.OrdinalIgnoreCase);
                if (isModel && Define(null, name, [], options, problems) is { } definition)
                {
                    yield return definition;
                }
            }

            yield break;
        }

        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var query = item.IndexOf('?', StringComparison.Ordinal);
            var spec = query < 0 ? item : item[..query];
            var settings = query < 0 ? [] : QueryHelpers.ParseQuery(item[query..]).ToDictionary(p => p.Key, p => p.Value.ToString(), StringComparer.Ordinal);
            var equals = spec.IndexOf('=', StringComparison.Ordinal);
            var path = equals < 0 ? spec : spec[(equals + 1)..];
            if (Define(equals < 0 ? null : spec[..equals], path, settings, options, problems) is { } definition)
            {
                yield return definition;
            }
        }
    }

    /// <summary>A model file or archive with its settings; null (and a problem) when an archive cannot be used.</summary>
    private static ModelDefinition? Define(
        string? name, string path, Dictionary<string, string> settings, GatewayOptions options, List<string> problems)
    {
        var label = name ?? path;
        int? Setting(string key)
        {
            if (!settings.Remove(key, out var value))
            {
                return null;
            }

            if (int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed))
            {
                return parsed;
            }

            problems.Add($"model '{label}': {key}={value} is not an integer");
            return null;
        }

        var placementProblems = new List<string>();
        var given = new GivenSettings
        {
            Name = name,
            Version = settings.Remove("version", out var version) ? version : null,
            Handler = settings.Remove("handler", out var handler) ? handler : null,
            Replicas = Setting("replicas"),
            BatchSize = Setting("batch_size"),
            MaxBatchDelay = Setting("max_batch_delay"),
            JobQueueSize = Setting("job_queue_size"),
            ResponseTimeout = Setting("response_timeout"),
            Labels = settings.Remove("labels", out var labels) ? ResolvePath(labels, options) : null,
            Placement = PlacementSettings.Read(key => settings.Remove(key, out var value) ? value : null, placementProblems),
        };
        var owner = settings.Remove("tenant", out var tenant) ? tenant : ModelDefinition.AdminTenant;
        var sharedWith = settings.Remove("shared_with", out var shared) ? shared.Replace(';', ',') : string.Empty;
        problems.AddRange(placementProblems.Select(p => $"model '{label}': {p}"));
        problems.AddRange(settings.Keys.Select(k =>
            $"model '{label}': unknown setting '{k}' (known: replicas, batch_size, max_batch_delay, job_queue_size, response_timeout, handler, " +
            $"version, labels, tenant, shared_with, {string.Join(", ", PlacementSettings.Names)})"));
        try
        {
            return ModelFiles.Define(ModelFiles.IsArchive(path, options.ModelStore) ? path : ResolvePath(path, options), given, options).Definition
                with { Owner = owner, SharedWith = sharedWith };
        }
        catch (Exception error) when (error is ArchiveException or FileNotFoundException)
        {
            problems.Add($"model '{label}' ({path}): {error.Message}");
            return null;
        }
    }

    private static ModelDefinition? FromSection(StartupModelOptions model, GatewayOptions options, List<string> problems)
    {
        ModelSource source;
        if (model.Path is not null == model.Architecture is not null)
        {
            problems.Add($"Serve:Models entry '{model.Name}' needs exactly one of Path (TorchScript) or Architecture (built-in)");
            return null;
        }

        if (model.Path is not null)
        {
            source = new TorchScriptSource(ResolvePath(model.Path, options));
        }
        else
        {
            source = new BuiltInSource(model.Architecture!, model.Weights is null ? null : ResolvePath(model.Weights, options), model.Seed,
                [.. model.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new ModelParameter(p.Key, p.Value))]);
        }

        return new ModelDefinition(
            model.Name,
            model.Version,
            source,
            model.Handler ?? BuiltInHandlers.Tensor,
            model.Replicas ?? options.DefaultWorkersPerModel,
            model.BatchSize ?? ModelDefinition.DefaultBatchSize,
            model.MaxBatchDelay ?? ModelDefinition.DefaultMaxBatchDelayMs,
            model.JobQueueSize ?? options.JobQueueSize,
            model.ResponseTimeout ?? options.DefaultResponseTimeout,
            model.Labels is null ? null : ResolvePath(model.Labels, options))
        {
            Placement = new ModelPlacement(model.Nodes, model.Devices, model.Spread),
            DeviceMemoryMb = model.DeviceMemoryMb,
            Owner = model.Tenant ?? ModelDefinition.AdminTenant,
            SharedWith = string.Join(',', model.SharedWith),
        };
    }

    /// <summary>
    /// With a model store, relative paths stay relative to it (each worker resolves them against its own
    /// store, which may be mounted elsewhere); without one they are made absolute from the working directory.
    /// </summary>
    private static string ResolvePath(string path, GatewayOptions options) =>
        Path.IsPathRooted(path) || options.ModelStore is not null ? path : Path.GetFullPath(path);
}
