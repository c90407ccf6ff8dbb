using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.Options;
using Serve.Actors.Hosting;
using Serve.Actors.Protocol;

namespace Serve.Gateway.Hosting;

/// <summary>
/// Registers the start-up models with the registry once the cluster is up, retrying until the registry
/// singleton answers. Problems in the configuration were already refused at start-up.
/// </summary>
public sealed partial class StartupModelRegistrar(
    IReadOnlyList<ModelDefinition> models, IRequiredActor<ModelRegistry> registry, ILogger<StartupModelRegistrar> logger)
    : BackgroundService
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (models.Count == 0)
        {
            return;
        }

        var proxy = await registry.GetAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var result = await proxy.Ask<ModelsRegistered>(new RegisterModels([.. models]), AskTimeout, stoppingToken);
                foreach (var problem in result.Problems)
                {
                    LogProblem(problem);
                }

                LogRegistered(models.Count, result.Registered);
                return;
            }
            catch (AskTimeoutException)
            {
                LogWaiting();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Start-up models registered ({Count}): {Models}")]
    private partial void LogRegistered(int count, string[] models);

    [LoggerMessage(Level = LogLevel.Error, Message = "Start-up model refused: {Problem}")]
    private partial void LogProblem(string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "Waiting for the model registry to start")]
    private partial void LogWaiting();
}
