using Microsoft.Extensions.Diagnostics.HealthChecks;
using Serve.Actors.Registry;

namespace Serve.Gateway.Grpc;

/// <summary>
/// The HTTP APIs' health answers as ASP.NET Core health checks, so gRPC's <c>grpc.health.v1.Health</c> says
/// the same: <see cref="Ready"/> is <c>/v2/health/ready</c> (every model has a ready replica), <see cref="Healthy"/>
/// is TorchServe's <c>/ping</c> (no model's default version is left with failed replicas only).
/// </summary>
public static class ServeHealthChecks
{
    public const string Ready = "ready";
    public const string Healthy = "healthy";

    /// <summary>The process answers (<c>/v2/health/live</c>): what the management service's health says.</summary>
    public const string Live = "live";

    public static IHealthChecksBuilder AddServeHealthChecks(this IHealthChecksBuilder builder) => builder
        .AddCheck<ReadyCheck>(Ready)
        .AddCheck<HealthyCheck>(Healthy)
        .AddCheck(Live, () => HealthCheckResult.Healthy("the process answers"));

    private sealed class ReadyCheck(CatalogView catalog) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(catalog.Current.AllModelsReady
                ? HealthCheckResult.Healthy("every model has a ready replica")
                : HealthCheckResult.Unhealthy("a model has no ready replica yet, or the catalog has not arrived"));
    }

    private sealed class HealthyCheck(CatalogView catalog) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(catalog.Current.Healthy
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy("a model's default version has only failed replicas"));
    }
}
