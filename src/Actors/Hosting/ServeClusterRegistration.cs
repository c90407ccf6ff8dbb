using Akka.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
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
            ? [$"a {string.Join("/", roles)} node needs Serve:Cluster:Seeds (e.g. --seed akka.tcp://{options.SystemName}@gateway-host:4053)"]
            : [];
}
