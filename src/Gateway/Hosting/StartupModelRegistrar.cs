using Akka.Actor;
using Akka.Hosting;
using Serve.Actors.Hosting;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Gateway.Hosting;

/// <summary>
/// Registers the start-up models with the registry once it answers, and again whenever a new registry
/// takes over (the singleton moved to another gateway, or restarted): until the registry persists its
/// state, the gateways' configuration is what brings the models back. Registering again is harmless (the
/// registry keeps what it has); the start-up models of an earlier configuration that this one does not
/// name are unregistered. A gateway with no start-up models registers nothing and removes nothing, so a
/// gateway added only to take traffic leaves the others' models alone. Problems in the configuration were
/// already refused at start-up.
/// </summary>
public sealed partial class StartupModelRegistrar(
    IReadOnlyList<ModelDefinition> models, IRequiredActor<ModelRegistry> registry, CatalogView catalog,
    ILogger<StartupModelRegistrar> logger)
    : BackgroundService
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _registryChanged = new(0);
    private string? _registeredWith;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (models.Count == 0)
        {
            return;
        }

        var proxy = await registry.GetAsync(stoppingToken);
        catalog.Changed += OnCatalog;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    var result = await proxy.Ask<ModelsRegistered>(new RegisterModels([.. models]), AskTimeout, stoppingToken);
                    Report(result);
                    Volatile.Write(ref _registeredWith, result.RegistryIncarnation);
                    await _registryChanged.WaitAsync(stoppingToken);
                }
                catch (AskTimeoutException)
                {
                    LogWaiting();
                }
            }
        }
        finally
        {
            catalog.Changed -= OnCatalog;
        }
    }

    public override void Dispose()
    {
        _registryChanged.Dispose();
        base.Dispose();
    }

    private void OnCatalog(CatalogState state)
    {
        if (state.Received && Volatile.Read(ref _registeredWith) is { } known && state.Snapshot.RegistryIncarnation != known)
        {
            _registryChanged.Release();
        }
    }

    private void Report(ModelsRegistered result)
    {
        foreach (var problem in result.Problems)
        {
            LogProblem(problem);
        }

        if (result.Registered.Length > 0)
        {
            LogRegistered(result.Registered.Length, result.Registered);
        }

        if (result.Removed.Length > 0)
        {
            LogRemoved(result.Removed.Length, result.Removed);
        }
    }

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Start-up models of an earlier configuration that this one does not name were unregistered ({Count}): {Models}")]
    private partial void LogRemoved(int count, string[] models);

    [LoggerMessage(Level = LogLevel.Information, Message = "Start-up models registered ({Count}): {Models}")]
    private partial void LogRegistered(int count, string[] models);

    [LoggerMessage(Level = LogLevel.Error, Message = "Start-up model refused: {Problem}")]
    private partial void LogProblem(string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "Waiting for the model registry to start")]
    private partial void LogWaiting();
}
