using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Serve.Actors.Configuration;

/// <summary>
/// Where every Serve process (standalone, gateway, worker) reads its configuration from, lowest precedence
/// first: Serve's built-in settings, appsettings.json, TorchServe's config.properties (when there is one),
/// environment variables, the command line (TorchServe's switches among them).
/// </summary>
public static partial class ServeConfiguration
{
    /// <summary>Where a node keeps its state (journal, keys, the cluster certificate). Switch --data-dir.</summary>
    public const string DataDirectoryKey = "Serve:DataDirectory";

    public const string DefaultDataDirectory = "data";

    public static IHostApplicationBuilder AddServeConfiguration(this IHostApplicationBuilder builder, string[] args)
    {
        var configuration = builder.Configuration;
        configuration.Sources.Insert(0, BuiltInSettings.Source());
        configuration.AddServeCommandLine(args);
        if (TorchServeConfig.Locate(configuration["Serve:TorchServeConfig"], Environment.GetEnvironmentVariable) is { } path)
        {
            configuration.Sources.Insert(BelowEnvironmentVariables(configuration.Sources),
                new TorchServeConfigurationSource(path, Environment.GetEnvironmentVariable));
        }

        builder.Services.AddHostedService<TorchServeConfigLog>();
        return builder;
    }

    private static int BelowEnvironmentVariables(IList<IConfigurationSource> sources)
    {
        for (var i = sources.Count - 1; i >= 0; i--)
        {
            if (sources[i] is EnvironmentVariablesConfigurationSource { Prefix: null or "" })
            {
                return i;
            }
        }

        var commandLine = sources.ToList().FindIndex(s => s is CommandLineConfigurationSource);
        return commandLine >= 0 ? commandLine : sources.Count;
    }

    /// <summary>Says once, at start-up, what was taken from config.properties and what was not.</summary>
    private sealed partial class TorchServeConfigLog(IConfiguration configuration, ILogger<TorchServeConfigLog> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            var read = (configuration as IConfigurationRoot)?.Providers.OfType<TorchServeConfigurationProvider>().FirstOrDefault()?.Result;
            if (read is null)
            {
                return Task.CompletedTask;
            }

            LogApplied(read.Path, string.Join(", ", read.Applied));
            if (read.NotApplied.Count > 0)
            {
                LogNotApplied(read.Path, string.Join("; ", read.NotApplied));
            }

            if (read.Unknown.Count > 0)
            {
                LogUnknown(read.Path, string.Join(", ", read.Unknown));
            }

            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        [LoggerMessage(Level = LogLevel.Information, Message = "Read TorchServe configuration {Path}; applied: {Keys}")]
        private partial void LogApplied(string path, string keys);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Keys in {Path} that Serve does not apply: {Keys}")]
        private partial void LogNotApplied(string path, string keys);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Unknown keys in {Path} (ignored): {Keys}")]
        private partial void LogUnknown(string path, string keys);
    }
}

/// <summary>
/// TorchServe's config.properties as a configuration source: its keys, read as Serve's (<see cref="TorchServeConfig"/>).
/// A file with problems stops the start with every problem listed.
/// </summary>
public sealed class TorchServeConfigurationSource(string path, Func<string, string?> environment) : IConfigurationSource
{
    public IConfigurationProvider Build(IConfigurationBuilder builder) => new TorchServeConfigurationProvider(path, environment);
}

public sealed class TorchServeConfigurationProvider(string path, Func<string, string?> environment) : ConfigurationProvider
{
    /// <summary>What reading the file gave, for the start-up log.</summary>
    public TorchServeConfigResult? Result { get; private set; }

    public override void Load()
    {
        var result = TorchServeConfig.Read(path, environment);
        if (result.Problems.Count > 0)
        {
            throw new InvalidOperationException($"{path}: {string.Join("; ", result.Problems)}");
        }

        Result = result;
        Data = new Dictionary<string, string?>(result.Settings, StringComparer.OrdinalIgnoreCase);
    }
}
