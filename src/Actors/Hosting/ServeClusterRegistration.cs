using Akka.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Serve.Actors.Configuration;

namespace Serve.Actors.Hosting;

public static class ServeClusterRegistration
{
    /// <summary>
    /// The node's actor system: cluster membership with <paramref name="roles"/> from <c>Serve:Cluster</c>,
    /// then whatever <paramref name="configure"/> adds (gateway and/or worker actors, in that order of need).
    /// </summary>
    public static IServiceCollection AddServeCluster(
        this IServiceCollection services, IConfiguration configuration, IReadOnlyCollection<string> roles,
        Action<AkkaConfigurationBuilder, IServiceProvider> configure)
    {
        services.AddValidatedOptions<ServeClusterOptions>(ServeClusterOptions.Section, o => [.. o.Validate(), .. SeedProblems(o, roles)]);
        var certificates = new ClusterCertificateProvision();
        services.AddSingleton(certificates);
        var dataDirectory = configuration[ServeConfiguration.DataDirectoryKey] ?? ServeConfiguration.DefaultDataDirectory;
        var gateway = roles.Contains(ServeRoles.Gateway);
        services.PostConfigure<ServeClusterOptions>(options =>
        {
            certificates.Provide(options, dataDirectory, gateway);
            if (gateway && options.MembersFile is null && options.Seeds.Length > 0)
            {
                options.MembersFile = Path.GetFullPath(Path.Combine(dataDirectory, KnownMembers.DefaultFileName));
            }
        });
        services.AddHostedService<ClusterSecurityReport>();
        var systemName = configuration.GetSection(ServeClusterOptions.Section).Get<ServeClusterOptions>()?.SystemName ?? "serve";
        services.AddAkka(systemName, (akka, provider) =>
        {
            var options = provider.GetRequiredService<IOptions<ServeClusterOptions>>().Value;
            akka.ConfigureLoggers(loggers =>
            {
                loggers.ClearLoggers();
                loggers.AddLoggerFactory();
            });
            akka.WithServeCluster(options, roles);
            configure(akka, provider);
        });
        return services;
    }

    /// <summary>A node without the gateway role cannot form a cluster of its own: it would never find a registry.</summary>
    private static IEnumerable<string> SeedProblems(ServeClusterOptions options, IReadOnlyCollection<string> roles) =>
        options.Seeds.Length == 0 && !roles.Contains(ServeRoles.Gateway)
            ? [$"a {string.Join("/", roles)} node needs Serve:Cluster:Seeds (e.g. --seed {options.Protocol}://{options.SystemName}@gateway-host:4053)"]
            : [];
}

/// <summary>
/// Fills in the default keystore (<c>cluster.p12</c> in the data directory) when none is configured, and on
/// the gateway that founds the cluster creates the keystore, default or configured, if it is not there yet
/// (never replacing one). A joining node never makes its own: it would hold a certificate nobody trusts and
/// fail every handshake, so it is refused at start-up with what to copy.
/// </summary>
public sealed class ClusterCertificateProvision
{
    /// <summary>The certificate this process created, if it did (reported at start-up).</summary>
    public string? Created { get; private set; }

    /// <param name="gateway">Whether this node has the gateway role: only a gateway founds a cluster.</param>
    public void Provide(ServeClusterOptions options, string dataDirectory, bool gateway)
    {
        if (options.Plaintext)
        {
            return;
        }

        if (string.IsNullOrEmpty(options.Tls.Keystore))
        {
            options.Tls.Keystore = Path.GetFullPath(Path.Combine(dataDirectory, ClusterCertificate.DefaultFileName));
        }

        var path = options.Tls.Keystore;
        // A password-protected keystore is the operator's own: never made here.
        if (gateway && options.FoundsCluster && string.IsNullOrEmpty(options.Tls.KeystorePassword) && !File.Exists(path))
        {
            try
            {
                ClusterCertificate.Create(path);
                Created = path;
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process sharing the file wrote it first: theirs is the one.
            }
        }
    }
}

/// <summary>Says at start-up how the cluster port is protected, and warns loudly when it is not.</summary>
public sealed partial class ClusterSecurityReport(
    IOptions<ServeClusterOptions> options, ClusterCertificateProvision certificates, ILogger<ClusterSecurityReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var cluster = options.Value;
        if (cluster.Plaintext)
        {
            LogPlaintext(logger, cluster.Hostname, cluster.Port);
            return Task.CompletedTask;
        }

        if (certificates.Created is { } created)
        {
            LogCreated(logger, created);
        }

        LogTls(logger, cluster.Hostname, cluster.Port, cluster.Tls.Keystore!);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster TLS is OFF (Serve:Cluster:Plaintext): the cluster port {Address}:{Port} speaks plain, " +
                                                       "unauthenticated akka.tcp, and any process that reaches it (every local user, on loopback) can join " +
                                                       "the cluster and send it messages")]
    private static partial void LogPlaintext(ILogger logger, string address, int port);

    [LoggerMessage(Level = LogLevel.Information, Message = "Created the cluster certificate {Path}: every node that joins this cluster needs a copy " +
                                                           "(Serve:Cluster:Tls:Keystore)")]
    private static partial void LogCreated(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "The cluster port {Address}:{Port} runs mutual TLS with {Keystore}: only nodes holding " +
                                                           "the cluster's certificate can connect")]
    private static partial void LogTls(ILogger logger, string address, int port, string keystore);
}
