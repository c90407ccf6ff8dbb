using Serve.Actors.Configuration;
using Serve.Actors.Protocol;

namespace Serve.Gateway.Hosting;

/// <summary>
/// The gateway's listeners, limits and start-up models. Section <c>Serve</c>; keys and defaults follow
/// TorchServe's config.properties (inference_address, max_request_size, ...).
/// </summary>
public sealed class GatewayOptions
{
    public const string Section = "Serve";

    /// <summary>TorchServe's inference_address. Env: Serve__InferenceAddress.</summary>
    public string InferenceAddress { get; set; } = "http://127.0.0.1:8080";

    /// <summary>TorchServe's management_address. Env: Serve__ManagementAddress.</summary>
    public string ManagementAddress { get; set; } = "http://127.0.0.1:8081";

    /// <summary>TorchServe's metrics_address: <c>GET /metrics</c>, without a key. Env: Serve__MetricsAddress.</summary>
    public string MetricsAddress { get; set; } = "http://127.0.0.1:8082";

    /// <summary>Serve <c>GET /metrics</c> on the metrics listener (TorchServe's enable_metrics_api). Env: Serve__EnableMetricsApi.</summary>
    public bool EnableMetricsApi { get; set; } = true;

    /// <summary>
    /// TorchServe's metrics_mode: <c>prometheus</c> (every family), <c>legacy</c> (only TorchServe's three
    /// <c>ts_*</c> families) or <c>log</c>, TorchServe's default, which writes metrics to a log file there;
    /// Serve has no metrics log, so <c>log</c> exports like <c>prometheus</c>. Env: Serve__MetricsMode.
    /// </summary>
    public string MetricsMode { get; set; } = "prometheus";

    /// <summary>The <see cref="MetricsMode"/> that exports only TorchServe's legacy families.</summary>
    public const string LegacyMetricsMode = "legacy";

    /// <summary>The values <see cref="MetricsMode"/> accepts (any case).</summary>
    public static readonly string[] MetricsModes = ["prometheus", LegacyMetricsMode, "log"];

    /// <summary>TorchServe's grpc_inference_address (HTTP/2 without TLS). Env: Serve__GrpcInferenceAddress.</summary>
    public string GrpcInferenceAddress { get; set; } = "http://127.0.0.1:7070";

    /// <summary>TorchServe's grpc_management_address (HTTP/2 without TLS). Env: Serve__GrpcManagementAddress.</summary>
    public string GrpcManagementAddress { get; set; } = "http://127.0.0.1:7071";

    /// <summary>Largest request body or gRPC request message in bytes (TorchServe's max_request_size). Env: Serve__MaxRequestSize.</summary>
    public long MaxRequestSize { get; set; } = 6_553_500;

    /// <summary>Largest response body or gRPC response message in bytes (TorchServe's max_response_size). Env: Serve__MaxResponseSize.</summary>
    public long MaxResponseSize { get; set; } = 6_553_500;

    /// <summary>Default per-request deadline (TorchServe's default_response_timeout, seconds). Env: Serve__DefaultResponseTimeout.</summary>
    public int DefaultResponseTimeout { get; set; } = ModelDefinition.DefaultResponseTimeoutSeconds;

    /// <summary>
    /// Seconds a synchronous registration or scale waits for its replicas to serve (TorchServe's
    /// default_startup_timeout). Env: Serve__DefaultStartupTimeout.
    /// </summary>
    public int DefaultStartupTimeout { get; set; } = 120;

    /// <summary>Default queue bound per replica (TorchServe's job_queue_size). Env: Serve__JobQueueSize.</summary>
    public int JobQueueSize { get; set; } = ModelDefinition.DefaultJobQueueSize;

    /// <summary>Replicas for each start-up model (TorchServe's default_workers_per_model). Env: Serve__DefaultWorkersPerModel.</summary>
    public int DefaultWorkersPerModel { get; set; } = 1;

    /// <summary>
    /// Allow registering and unregistering models through the management API after start-up (TorchServe's
    /// enable_model_api, off by default: those calls answer 405). Scaling, describing and setting the
    /// default version are always allowed. Env: Serve__EnableModelApi.
    /// </summary>
    public bool EnableModelApi { get; set; }

    /// <summary>Where Serve keeps its state (the registry's SQLite journal). Env: Serve__DataDirectory; switch --data-dir.</summary>
    public string DataDirectory { get; set; } = ServeConfiguration.DefaultDataDirectory;

    /// <summary>
    /// URLs models may be registered from (TorchServe's allowed_urls): regular expressions, each matched
    /// against the whole URL, case-insensitive. Empty by default: no URL is allowed. Env: Serve__AllowedUrls__0.
    /// </summary>
    public string[] AllowedUrls { get; set; } = [];

    /// <summary>Largest model file downloaded for a registration, in bytes (1 GiB). Env: Serve__MaxDownloadSize.</summary>
    public long MaxDownloadSize { get; set; } = 1L << 30;

    /// <summary>Most bytes a model archive may unpack to (4 GiB). Env: Serve__MaxArchiveSize.</summary>
    public long MaxArchiveSize { get; set; } = 4L << 30;

    /// <summary>Signed archives: the keys trusted and whether signatures are required (section Serve:Archives).</summary>
    public ArchiveTrustOptions Archives { get; set; } = new();

    /// <summary>Directory of model files (TorchServe's model_store, --model-store). Env: Serve__ModelStore.</summary>
    public string? ModelStore { get; set; }

    /// <summary>
    /// Models to load at start-up (TorchServe's load_models, --models): <c>all</c>, or a comma-separated list of
    /// <c>file</c> or <c>name=file</c>, each optionally followed by settings, e.g.
    /// <c>tiny=tiny.pt?replicas=2&amp;batch_size=8&amp;max_batch_delay=5&amp;handler=tensor</c>. Env: Serve__LoadModels.
    /// </summary>
    public string? LoadModels { get; set; }

    /// <summary>Start-up models described in full (built-in architectures, labels, ...). Env: Serve__Models__0__Name, ...</summary>
    public List<StartupModelOptions> Models { get; set; } = [];

    /// <summary>
    /// Serve the embedded default model (resnet18 with seeded weights) when no model is configured. On by
    /// default for the standalone server. Env: Serve__DefaultModel__Enabled.
    /// </summary>
    public DefaultModelOptions DefaultModel { get; set; } = new();
}

/// <summary>One start-up model. Either <see cref="Path"/> (TorchScript) or <see cref="Architecture"/> (built-in).</summary>
public sealed class StartupModelOptions
{
    public string Name { get; set; } = string.Empty;

    public string Version { get; set; } = "1.0";

    /// <summary>TorchScript file, relative to the model store or absolute.</summary>
    public string? Path { get; set; }

    /// <summary>Built-in architecture: resnet18 or mlp.</summary>
    public string? Architecture { get; set; }

    /// <summary>Weights for a built-in architecture (.dat, .pt/.pth state dict, .safetensors); none: seeded.</summary>
    public string? Weights { get; set; }

    public long Seed { get; set; }

    /// <summary>Architecture settings, e.g. num_classes=1000 or layers=10,32,6.</summary>
    public Dictionary<string, string> Parameters { get; set; } = [];

    public string? Handler { get; set; }

    public int? Replicas { get; set; }

    public int? BatchSize { get; set; }

    public int? MaxBatchDelay { get; set; }

    public int? JobQueueSize { get; set; }

    public int? ResponseTimeout { get; set; }

    /// <summary>index_to_name.json for classifiers.</summary>
    public string? Labels { get; set; }

    /// <summary>Worker nodes (names or host:port) its replicas may run on; empty: any.</summary>
    public string[] Nodes { get; set; } = [];

    /// <summary>Devices (cuda:N, cpu:N) its replicas may run on; empty: any.</summary>
    public string[] Devices { get; set; } = [];

    /// <summary>At most one replica per node.</summary>
    public bool Spread { get; set; }

    /// <summary>Device memory each replica declares, in MB (placement never over-commits a device).</summary>
    public int DeviceMemoryMb { get; set; }

    /// <summary>The tenant that owns the model (default: admin).</summary>
    public string? Tenant { get; set; }

    /// <summary>Other tenants that may call it.</summary>
    public string[] SharedWith { get; set; } = [];
}

public sealed class DefaultModelOptions
{
    public bool Enabled { get; set; }

    public string Name { get; set; } = "resnet18";

    /// <summary>resnet18 weights to serve instead of seeded ones (.pth/.pt state dict, .safetensors, .dat).</summary>
    public string? Weights { get; set; }

    /// <summary>index_to_name.json with ImageNet's class names.</summary>
    public string? Labels { get; set; }
}
