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
        services.AddValidatedOptions<ServeClusterOptions>(ServeClusterOptions.Section, o => o.Validate());
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
}
