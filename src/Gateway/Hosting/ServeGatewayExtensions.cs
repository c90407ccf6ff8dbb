using System.Security.Cryptography.X509Certificates;
using Akka.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing.Matching;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Serve.Actors.Hosting;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Grpc;
using Serve.Gateway.Inference;
using Serve.Gateway.Management;
using Serve.Gateway.Metrics;
using Serve.Gateway.Security;

namespace Serve.Gateway.Hosting;

/// <summary>Registers and maps the gateway: listeners, endpoints, the inference client and its actors.</summary>
public static class ServeGatewayExtensions
{
    /// <summary>Options, Kestrel listeners, routing by listener, the inference client, start-up models.</summary>
    public static WebApplicationBuilder AddServeGateway(this WebApplicationBuilder builder, bool defaultModel)
    {
        var services = builder.Services;
        var frame = builder.Configuration.GetSection(ServeClusterOptions.Section).Get<ServeClusterOptions>() ?? new ServeClusterOptions();
        services.AddValidatedOptions<GatewayOptions>(GatewayOptions.Section, o => ValidateGateway(o, frame.MaximumPayloadBytes));
        services.AddValidatedOptions<RegistryOptions>(RegistryOptions.Section, o => o.Validate());
        services.AddValidatedOptions<SecurityOptions>(SecurityOptions.Section, o => o.Validate());
        services.AddSingleton<ApiKeys>();
        services.AddValidatedOptions<TenantsOptions>(GatewayOptions.Section, o => o.Validate());
        services.AddSingleton<TenantDirectory>();
        services.AddSingleton<TenantQuotas>();
        services.AddSingleton<KeyCheck>();
        services.AddSingleton<ServeMetrics>();
        services.AddHostedService<SecurityStartup>();
        services.PostConfigure<GatewayOptions>(o => o.DefaultModel.Enabled = builder.Configuration.GetValue(
            "Serve:DefaultModel:Enabled", defaultModel));

        // Read once here: listeners and body limits are fixed for the life of the process.
        var options = builder.Configuration.GetSection(GatewayOptions.Section).Get<GatewayOptions>() ?? new GatewayOptions();
        var tls = builder.Configuration.GetSection(TlsOptions.Section).Get<TlsOptions>() ?? new TlsOptions();
        services.AddValidatedOptions<TlsOptions>(TlsOptions.Section, o => ValidateTls(o, options));
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestSize;
            // Loaded once, only when a listener serves TLS; every https:// listener serves the same certificate.
            var certificate = new Lazy<X509Certificate2>(tls.Load);
            foreach (var (kind, address) in Addresses(options))
            {
                Listeners.Listen(kestrel, address, kind, () => certificate.Value);
            }
        });
        services.Configure<FormOptions>(f => CopyFormOptions(RequestBodies.FormOptions(options.MaxRequestSize), f));

        services.AddSingleton<MatcherPolicy, ListenerMatcherPolicy>();
        services.AddSingleton<CatalogView>();
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<RequestBodies>();
        services.AddSingleton<IInferenceClient, ShardedInferenceClient>();
        services.AddSingleton<IManagementClient, ManagementClient>();
        services.AddSingleton<ModelDownloads>();
        services.AddSingleton<ManagementOperations>();
        services.AddServeGrpc(options);
        services.TryAddSingleton<LocalReplicas>();
        services.AddSingleton<IReadOnlyList<ModelDefinition>>(sp =>
        {
            var models = StartupModels.Build(sp.GetRequiredService<IOptions<GatewayOptions>>().Value, out var problems);
            return problems.Count == 0
                ? models
                : throw new OptionsValidationException(GatewayOptions.Section, typeof(GatewayOptions), problems);
        });
        services.AddHostedService<StartupModelRegistrar>();
        services.AddProblemDetails();
        return builder;
    }

    /// <summary>
    /// The gateway's actors: the registry singleton (with a proxy), the catalog subscriber and, unless this
    /// node hosts the replicas itself, a shard region proxy to the workers.
    /// </summary>
    public static AkkaConfigurationBuilder WithServeGateway(this AkkaConfigurationBuilder akka, IServiceProvider services, bool hostsReplicas)
    {
        if (!hostsReplicas)
        {
            akka.WithModelReplicaRouting(services.GetRequiredService<CatalogView>());
        }

        return akka
            .WithRegistryJournal(services.GetRequiredService<IOptions<RegistryOptions>>().Value,
                services.GetRequiredService<IOptions<GatewayOptions>>().Value.DataDirectory)
            .WithModelRegistry(RegistrySettings.Default)
            .WithCatalogView(services.GetRequiredService<CatalogView>());
    }

    public static WebApplication MapServeGateway(this WebApplication app)
    {
        // Start-up models are checked before anything listens: bad configuration stops the process.
        _ = app.Services.GetRequiredService<IReadOnlyList<ModelDefinition>>();
        // Outermost, so the status counted is the one sent, whatever answered it.
        app.UseResponseCounting();
        // Every error is TorchServe's JSON, including routing misses and faults in Serve itself.
        app.UseExceptionHandler(errors => errors.Run(context =>
            ErrorTable.TorchServe(StatusCodes.Status500InternalServerError, "InternalServerException",
                "Serve failed to handle the request; the cause is in the server's log").ExecuteAsync(context)));
        app.UseStatusCodePages(context =>
        {
            var status = context.HttpContext.Response.StatusCode;
            var result = status switch
            {
                StatusCodes.Status404NotFound => ErrorTable.TorchServe(status, "ResourceNotFoundException",
                    "Requested resource is not found, please refer to API document."),
                StatusCodes.Status405MethodNotAllowed => ErrorTable.TorchServe(status, "MethodNotAllowedException",
                    "Requested method is not allowed, please refer to API document."),
                _ => ErrorTable.TorchServe(status, "HttpException", $"The request failed with HTTP status {status}."),
            };
            return result.ExecuteAsync(context.HttpContext);
        });
        // After routing (the endpoint and its listener are known), before any endpoint runs.
        app.UseTokenAuthorization();
        app.UseTenantQuotas();
        app.MapInferenceApi();
        app.MapOipApi();
        app.MapManagementApi();
        app.MapPlacementApi();
        app.MapTokenApi();
        app.MapTenantApi();
        app.MapMetricsApi();
        app.MapApiDescription();
        app.MapServeGrpc();
        return app;
    }

    /// <summary>Every listener to open and its configured address; no metrics listener when the metrics API is off (as TorchServe).</summary>
    public static (ListenerKind Kind, string Address)[] Addresses(GatewayOptions options) =>
    [
        (ListenerKind.Inference, options.InferenceAddress),
        (ListenerKind.Management, options.ManagementAddress),
        .. options.EnableMetricsApi ? [(ListenerKind.Metrics, options.MetricsAddress)] : Array.Empty<(ListenerKind, string)>(),
        (ListenerKind.GrpcInference, options.GrpcInferenceAddress),
        (ListenerKind.GrpcManagement, options.GrpcManagementAddress),
    ];

    /// <summary>An https:// listener needs a certificate that loads; a certificate nobody serves is a mistake worth stopping for too.</summary>
    internal static IReadOnlyList<string> ValidateTls(TlsOptions tls, GatewayOptions options)
    {
        var secured = Addresses(options).Where(a => Listeners.IsTls(a.Address)).Select(a => a.Kind.ToString()).ToList();
        if (secured.Count == 0)
        {
            return tls.IsConfigured
                ? ["Serve:Tls has a certificate but no listener serves TLS: give the listeners https:// addresses (e.g. Serve:InferenceAddress=https://127.0.0.1:8443)"]
                : [];
        }

        if (!tls.IsConfigured)
        {
            return [$"{string.Join(", ", secured)} listen on https:// but Serve:Tls has no certificate (CertificateFile and PrivateKeyFile, or Keystore)"];
        }

        try
        {
            using var certificate = tls.Load();
            return [];
        }
        catch (TlsException error)
        {
            return [error.Message];
        }
    }

    internal static IReadOnlyList<string> ValidateGateway(GatewayOptions options, long maximumPayloadBytes)
    {
        var problems = new List<string>();
        foreach (var (kind, address) in Addresses(options))
        {
            try
            {
                Listeners.ParseAddress(address, kind);
            }
            catch (OptionsValidationException error)
            {
                problems.AddRange(error.Failures);
            }
        }

        // Requests travel to workers in one frame: a bigger one would be dropped on the way.
        if (options.MaxRequestSize < 1024 || options.MaxRequestSize > maximumPayloadBytes)
        {
            problems.Add($"Serve:MaxRequestSize must be between 1024 and {maximumPayloadBytes} bytes (Serve:Cluster:MaximumFrameSizeBytes " +
                         $"less {ServeClusterOptions.FrameOverheadBytes}; raise that on every node for larger requests), not {options.MaxRequestSize}");
        }

        if (options.MaxResponseSize is < 1024 or > int.MaxValue)
        {
            problems.Add($"Serve:MaxResponseSize must be between 1024 and {int.MaxValue} bytes, not {options.MaxResponseSize}");
        }

        if (!GatewayOptions.MetricsModes.Contains(options.MetricsMode, StringComparer.OrdinalIgnoreCase))
        {
            problems.Add($"Serve:MetricsMode must be {string.Join(", ", GatewayOptions.MetricsModes)}, not '{options.MetricsMode}'");
        }

        problems.AddRange(AllowedUrls.Problems(options.AllowedUrls));
        if (options.MaxDownloadSize <= 0 || options.MaxArchiveSize <= 0)
        {
            problems.Add($"Serve:MaxDownloadSize and Serve:MaxArchiveSize must be positive numbers of bytes, not {options.MaxDownloadSize} and {options.MaxArchiveSize}");
        }

        problems.AddRange(options.Archives.Validate());
        if (options.DefaultStartupTimeout <= 0)
        {
            problems.Add($"Serve:DefaultStartupTimeout must be a positive number of seconds, not {options.DefaultStartupTimeout}");
        }

        if (options.ModelStore is not null && !Directory.Exists(options.ModelStore))
        {
            problems.Add($"model store '{options.ModelStore}' does not exist");
        }

        return problems;
    }

    private static void CopyFormOptions(FormOptions from, FormOptions to)
    {
        to.MultipartBodyLengthLimit = from.MultipartBodyLengthLimit;
        to.ValueLengthLimit = from.ValueLengthLimit;
        to.ValueCountLimit = from.ValueCountLimit;
        to.MultipartHeadersCountLimit = from.MultipartHeadersCountLimit;
        to.BufferBodyLengthLimit = from.BufferBodyLengthLimit;
    }
}
