using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Serve.Actors.Hosting;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Node.Torch;

namespace Serve.Node.Hosting;

/// <summary>Registers the worker: libtorch settings, devices, the TorchSharp backend and the replica shards.</summary>
public static partial class ServeWorkerExtensions
{
    public static IServiceCollection AddServeWorker(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<NodeOptions>(NodeOptions.Section, o => o.Validate());
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<NodeOptions>>().Value;
            var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Serve.Node.Devices");
            var (intra, interop) = TorchRuntime.Initialize(options);
            var devices = TorchRuntime.DiscoverDevices(options);
            LogDevices(logger, [.. devices.Select(d => d.Name)], intra, interop);
            return new DeviceManager(devices);
        });
        // In the standalone server the start-up models are this process's own configuration: their files are
        // allowed wherever they are. A worker-only node has none and allows its store and ModelDirectories.
        services.AddSingleton(sp => new ModelPaths(
            configuration["Serve:ModelStore"],
            sp.GetRequiredService<IOptions<NodeOptions>>().Value.ModelDirectories,
            (sp.GetService<IReadOnlyList<ModelDefinition>>() ?? []).SelectMany(d => d.Files)));
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<NodeOptions>>().Value);
        services.AddSingleton<ModelPreflight>();
        services.AddSingleton<IInferenceBackend, TorchBackend>();
        services.TryAddSingleton<LocalReplicas>();
        services.TryAddSingleton<CatalogView>();
        return services;
    }

    /// <summary>The replica shard region, and a proxy to the registry unless this node hosts it.</summary>
    public static AkkaConfigurationBuilder WithServeWorker(this AkkaConfigurationBuilder akka, IServiceProvider services, bool hostsRegistry)
    {
        var catalog = services.GetRequiredService<CatalogView>();
        if (!hostsRegistry)
        {
            // A worker-only node: the gateway's registry is reached through a proxy, and its catalog (the
            // placement plan the allocation strategy follows) through a subscriber of our own.
            akka.WithModelRegistryProxy().WithCatalogView(catalog);
        }

        var options = services.GetRequiredService<NodeOptions>();
        var cluster = services.GetRequiredService<IOptions<ServeClusterOptions>>().Value;
        var settings = ModelActorSettings.Default with
        {
            Backoff = options.Backoff,
            MaxReplyBytes = cluster.MaximumPayloadBytes,
            FairScheduling = options.FairScheduling,
        };
        var devices = services.GetRequiredService<DeviceManager>();
        var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
        akka.WithActors((system, _) => system.ActorOf(ProcessPoisonWatcher.Props(_ =>
        {
            Environment.ExitCode = ProcessPoisonWatcher.ExitCode;
            lifetime.StopApplication();
        }), "process-poison-watcher"));
        return akka.WithModelReplicaShards(services.GetRequiredService<IInferenceBackend>(), settings,
            services.GetRequiredService<LocalReplicas>(), devices.Inventory, devices.Hosted, options.Name, catalog);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Devices: {Devices} (libtorch threads: {Intra} intra-op, {Interop} inter-op)")]
    private static partial void LogDevices(ILogger logger, string[] devices, int intra, int interop);
}
