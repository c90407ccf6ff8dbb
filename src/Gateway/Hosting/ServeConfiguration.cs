using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Options;

namespace Serve.Gateway.Hosting;

/// <summary>
/// Where every Serve process reads its configuration from, lowest precedence first: Serve's built-in
/// defaults, appsettings.json, TorchServe's config.properties (when there is one), environment variables,
/// the command line.
/// </summary>
public static partial class ServeConfiguration
{
    public static IHostApplicationBuilder AddServeConfiguration(this IHostApplicationBuilder builder, string[] args)
    {
        var configuration = builder.Configuration;
        configuration.AddServeDefaults().AddServeCommandLine(args);

        var path = TorchServeConfig.Locate(configuration["Serve:TorchServeConfig"], Environment.GetEnvironmentVariable);
        if (path is null)
        {
            return builder;
        }

        var result = TorchServeConfig.Read(path, Environment.GetEnvironmentVariable);
        if (result.Problems.Count > 0)
        {
            throw new OptionsValidationException(path, typeof(TorchServeConfigResult), result.Problems);
        }

        configuration.Sources.Insert(BelowEnvironmentVariables(configuration.Sources), new MemoryConfigurationSource { InitialData = result.Settings });
        builder.Services.AddSingleton(result);
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
    private sealed partial class TorchServeConfigLog(TorchServeConfigResult result, ILogger<TorchServeConfigLog> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            LogApplied(result.Path, string.Join(", ", result.Applied));
            if (result.NotApplied.Count > 0)
            {
                LogNotApplied(result.Path, string.Join("; ", result.NotApplied));
            }

            if (result.Unknown.Count > 0)
            {
                LogUnknown(result.Path, string.Join(", ", result.Unknown));
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
