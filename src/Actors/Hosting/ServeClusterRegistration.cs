using Akka.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

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
        services.AddHostedService<ClusterExposureWarning>();
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

/// <summary>Warns at start-up when the cluster port is reachable from other hosts, naming the risk.</summary>
public sealed partial class ClusterExposureWarning(IOptions<ServeClusterOptions> options, ILogger<ClusterExposureWarning> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var cluster = options.Value;
        var loopback = System.Net.IPAddress.TryParse(cluster.Hostname, out var address)
            ? System.Net.IPAddress.IsLoopback(address)
            : cluster.Hostname == "localhost";
        if (!loopback)
        {
            if (cluster.Tls.Enabled)
            {
                LogOpenWithTls(logger, cluster.Hostname);
            }
            else
            {
                LogOpenWithoutTls(logger, cluster.Hostname);
            }
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Warning, Message = "The cluster port binds {Address}, not loopback, WITHOUT cluster TLS: any process that reaches it " +
                                                       "can join the cluster and send it messages. Set Serve:Cluster:Tls:Keystore on every node, or keep the port on a private network")]
    private static partial void LogOpenWithoutTls(ILogger logger, string address);

    [LoggerMessage(Level = LogLevel.Information, Message = "The cluster port binds {Address} with cluster TLS: only nodes holding the cluster's certificate can join")]
    private static partial void LogOpenWithTls(ILogger logger, string address);
}
