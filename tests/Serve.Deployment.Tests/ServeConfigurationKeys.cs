using System.Text.RegularExpressions;

namespace Serve.Deployment.Tests;

/// <summary>
/// The configuration keys Serve reads, as environment variable names. This list mirrors GatewayOptions and
/// ArchiveTrustOptions (src/Gateway/Hosting), ServeClusterOptions (src/Actors/Hosting) and NodeOptions
/// (src/Node/Hosting): when a key is added or renamed there, change it here too.
/// </summary>
public static partial class ServeConfigurationKeys
{
    public static readonly HashSet<string> Known = new(StringComparer.OrdinalIgnoreCase)
    {
        // GatewayOptions (section Serve).
        "Serve__InferenceAddress",
        "Serve__ManagementAddress",
        "Serve__MetricsAddress",
        "Serve__EnableMetricsApi",
        "Serve__MetricsMode",
        "Serve__GrpcInferenceAddress",
        "Serve__GrpcManagementAddress",
        "Serve__Security__DisableTokenAuthorization",
        "Serve__Security__TokenExpirationMinutes",
        "Serve__Security__KeyFile",
        "Serve__Tenants__0__Id",
        "Serve__Tenants__0__Name",
        "Serve__Tenants__0__KeySha256__0",
        "Serve__Tenants__0__Weight",
        "Serve__Tenants__0__RequestsPerSecond",
        "Serve__Tenants__0__Burst",
        "Serve__Tenants__0__MaxConcurrent",
        "Serve__Tenants__0__MaxQueued",
        "Serve__Tenants__0__MaxModels",
        "Serve__Tenants__0__MaxReplicas",
        "Serve__Tenants__0__MaxDeviceMemoryMb",
        "Serve__Tls__CertificateFile",
        "Serve__Tls__PrivateKeyFile",
        "Serve__Tls__Keystore",
        "Serve__Tls__KeystorePassword",
        "Serve__MaxRequestSize",
        "Serve__MaxResponseSize",
        "Serve__DefaultResponseTimeout",
        "Serve__JobQueueSize",
        "Serve__DefaultWorkersPerModel",
        "Serve__ModelStore",
        "Serve__LoadModels",
        "Serve__DefaultModel__Enabled",
        "Serve__DefaultModel__Name",
        "Serve__DefaultModel__Weights",
        "Serve__DefaultModel__Labels",
        "Serve__DefaultStartupTimeout",
        "Serve__EnableModelApi",
        "Serve__DataDirectory",
        "Serve__MaxDownloadSize",
        "Serve__MaxArchiveSize",
        "Serve__TorchServeConfig",

        // ArchiveTrustOptions (section Serve:Archives); TrustedKeys__N below.
        "Serve__Archives__RequireSigned",

        // RegistryOptions (section Serve:Registry).
        "Serve__Registry__Journal",
        "Serve__Registry__ConnectionString",

        // ServeClusterOptions (section Serve:Cluster); Seeds__N below.
        "Serve__Cluster__Tls__Keystore",
        "Serve__Cluster__Tls__KeystorePassword",
        "Serve__Cluster__Tls__TrustedThumbprints__0",
        "Serve__Cluster__Plaintext",
        "Serve__Cluster__SystemName",
        "Serve__Cluster__Hostname",
        "Serve__Cluster__Port",
        "Serve__Cluster__PublicHostname",
        "Serve__Cluster__MaximumFrameSizeBytes",
        "Serve__Cluster__StableAfter",
        "Serve__Cluster__HeartbeatPause",

        // NodeOptions (section Serve:Node).
        "Serve__Node__CpuSlots",
        "Serve__Node__Name",
        "Serve__Node__DeviceMemoryMb",
        "Serve__Node__Preflight",
        "Serve__Node__PreflightTimeout",
        "Serve__Node__TorchThreads",
        "Serve__Node__InteropThreads",
        "Serve__Node__MaxImagePixels",
        "Serve__Node__TextMaxLength",
        "Serve__Node__DetectionThreshold",
        "Serve__Node__RestartBackoffMin",
        "Serve__Node__RestartBackoffMax",
        "Serve__Node__MaxConsecutiveFailures",
        "Serve__Node__FairScheduling",
    };

    /// <summary>StartupModelOptions' properties, for Serve__Models__N__Property.</summary>
    public static readonly HashSet<string> StartupModelProperties = new(StringComparer.OrdinalIgnoreCase)
    {
        "Name", "Version", "Path", "Architecture", "Weights", "Seed", "Handler", "Replicas", "BatchSize",
        "MaxBatchDelay", "JobQueueSize", "ResponseTimeout", "Labels",
    };

    public static bool IsKnown(string name)
    {
        if (Known.Contains(name) || SeedKey().IsMatch(name) || AllowedUrlKey().IsMatch(name) || TrustedKeyKey().IsMatch(name))
        {
            return true;
        }

        var model = ModelKey().Match(name);
        if (!model.Success)
        {
            return false;
        }

        var property = model.Groups["property"].Value;
        return StartupModelProperties.Contains(property) || property.StartsWith("Parameters__", StringComparison.OrdinalIgnoreCase);
    }

    [GeneratedRegex(@"^Serve__Cluster__Seeds__\d+$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    public static partial Regex SeedKey();

    [GeneratedRegex(@"^Serve__AllowedUrls__\d+$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex AllowedUrlKey();

    [GeneratedRegex(@"^Serve__Archives__TrustedKeys__\d+$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex TrustedKeyKey();

    [GeneratedRegex(@"^Serve__Models__\d+__(?<property>.+)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex ModelKey();
}
