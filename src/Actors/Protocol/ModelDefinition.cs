namespace Serve.Actors.Protocol;

/// <summary>Where a model's weights come from.</summary>
public abstract record ModelSource
{
    /// <summary>The Open Inference Protocol's platform name for models from this source.</summary>
    public abstract string Platform { get; }
}

/// <summary>Platform names reported in model metadata (the protocol's <c>project_format</c> form).</summary>
public static class ModelPlatforms
{
    public const string TorchScript = "pytorch_torchscript";
    public const string TorchSharpBuiltIn = "pytorch_torchsharp";
}

/// <summary>A TorchScript archive written by <c>torch.jit.save</c> (.pt, .pth, .ts).</summary>
public sealed record TorchScriptSource(string Path) : ModelSource
{
    public override string Platform => ModelPlatforms.TorchScript;

    public override string ToString() => $"TorchScript {Path}";
}

/// <summary>
/// A built-in architecture (resnet18, mlp) with weights from a TorchSharp .dat, a PyTorch state dict or
/// safetensors file; without a weights file the weights are initialised from <paramref name="Seed"/>,
/// which gives a working model whose predictions mean nothing.
/// </summary>
public sealed record BuiltInSource(string Architecture, string? WeightsPath, long Seed, ModelParameter[] Parameters)
    : ModelSource
{
    public override string Platform => ModelPlatforms.TorchSharpBuiltIn;

    public bool Equals(BuiltInSource? other) =>
        other is not null
        && Architecture == other.Architecture
        && WeightsPath == other.WeightsPath
        && Seed == other.Seed
        && Parameters.SequenceEqual(other.Parameters);

    public override int GetHashCode() => HashCode.Combine(Architecture, WeightsPath, Seed, Parameters.Length);

    public string? Parameter(string name) => Parameters.FirstOrDefault(p => p.Name == name)?.Value;

    public override string ToString() =>
        $"built-in {Architecture}{string.Concat(Parameters.Select(p => $" {p.Name}={p.Value}"))}, "
        + (WeightsPath is null ? $"weights seeded from {Seed}" : $"weights from {WeightsPath}");
}

/// <summary>A named setting of a built-in architecture, e.g. <c>num_classes=1000</c>.</summary>
public sealed record ModelParameter(string Name, string Value);

/// <summary>
/// The desired state of one model version: what to load, how to handle requests, how many replicas.
/// Defaults follow TorchServe (batch size 1, 100 ms batch delay, queue of 100, 120 s response timeout).
/// </summary>
public sealed record ModelDefinition(
    string Name,
    string Version,
    ModelSource Source,
    string Handler,
    int Replicas,
    int BatchSize,
    int MaxBatchDelayMs,
    int JobQueueSize,
    int ResponseTimeoutSeconds,
    string? LabelsPath) : IServeMessage
{
    public const int DefaultBatchSize = 1;
    public const int DefaultMaxBatchDelayMs = 100;
    public const int DefaultJobQueueSize = 100;
    public const int DefaultResponseTimeoutSeconds = 120;

    public ModelKey Key => new(Name, Version);

    /// <summary>The WordPiece vocabulary text_classifier tokenises with (an archive's vocab.txt); null when none.</summary>
    public string? VocabPath { get; init; }

    /// <summary>What the model was registered from, as given (a file or archive name, or a URL); describe's modelUrl.</summary>
    public string? Url { get; init; }

    /// <summary>Where its replicas may run (default: anywhere, spread over nodes where possible).</summary>
    public ModelPlacement Placement { get; init; } = ModelPlacement.Anywhere;

    /// <summary>
    /// Device memory each replica declares, in MB (model-config.yaml's deviceMemoryMb, the API's
    /// device_memory_mb). Placement never puts more declared memory on a device than it has; 0 declares none.
    /// </summary>
    public int DeviceMemoryMb { get; init; }

    /// <summary>The tenant that owns the model: it, the admin tenant and <see cref="SharedWith"/> may call it.</summary>
    public string Owner { get; init; } = AdminTenant;

    /// <summary>
    /// Other tenants that may call the model, comma-separated (a string, so definitions compare by value); no
    /// one else even learns that it exists.
    /// </summary>
    public string SharedWith { get; init; } = string.Empty;

    public const string AdminTenant = "admin";

    /// <summary>Whether <paramref name="tenant"/> may see and call this model.</summary>
    public bool VisibleTo(string tenant) =>
        tenant == AdminTenant || tenant == Owner || SharedWithTenants.Contains(tenant, StringComparer.Ordinal);

    /// <summary><see cref="SharedWith"/> as a list (empty for a definition journaled before sharing existed).</summary>
    public string[] SharedWithTenants => (SharedWith ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Device memory all its replicas declare, in MB.</summary>
    public long DeclaredMemoryMb => (long)Replicas * DeviceMemoryMb;

    public ModelDefinition WithReplicas(int replicas) => this with { Replicas = replicas };

    /// <summary>Every file a worker opens for this model: the model or weights, the labels, the vocabulary.</summary>
    public IEnumerable<string> Files =>
        new[] { Source switch { TorchScriptSource s => s.Path, BuiltInSource b => b.WeightsPath, _ => null }, LabelsPath, VocabPath }
            .OfType<string>();

    /// <summary>Returns the problems that make this definition unusable; empty when it is valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (!ModelNames.IsValid(Name))
        {
            problems.Add($"model name '{Name}' is invalid: use {ModelNames.Rule}");
        }

        if (!ModelNames.IsValid(Version))
        {
            problems.Add($"model version '{Version}' is invalid: use {ModelNames.Rule}");
        }

        if (BuiltInHandlers.Problem(Handler) is { } handlerProblem)
        {
            problems.Add(handlerProblem);
        }

        if (Replicas is < 0 or > 64)
        {
            problems.Add($"replicas must be between 0 and 64, not {Replicas}");
        }

        if (BatchSize is < 1 or > 1024)
        {
            problems.Add($"batch_size must be between 1 and 1024, not {BatchSize}");
        }

        if (MaxBatchDelayMs is < 0 or > 60_000)
        {
            problems.Add($"max_batch_delay must be between 0 and 60000 ms, not {MaxBatchDelayMs}");
        }

        if (JobQueueSize is < 1 or > 100_000)
        {
            problems.Add($"job_queue_size must be between 1 and 100000, not {JobQueueSize}");
        }

        if (DeviceMemoryMb is < 0 or > 10_000_000)
        {
            problems.Add($"device_memory_mb must be between 0 and 10000000, not {DeviceMemoryMb}");
        }

        problems.AddRange(Placement.Problems());

        if (ResponseTimeoutSeconds is < 1 or > 86_400)
        {
            problems.Add($"response_timeout must be between 1 and 86400 s, not {ResponseTimeoutSeconds}");
        }

        return problems;
    }
}
