using Serve.Gateway.Hosting;

namespace Serve.Gateway.Security;

/// <summary>
/// <c>GET /tenants</c> on the management listener (the management key): each tenant's weight and quotas, and
/// its use of them on this gateway since it started.
/// </summary>
public static class TenantApi
{
    public static IEndpointRouteBuilder MapTenantApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/tenants", (TenantDirectory directory, TenantQuotas quotas) =>
            Results.Json(new { tenants = directory.Tenants.Prepend(Tenant.Admin).Select(t => Describe(t, quotas.UsageOf(t.Id))).ToArray() }))
            .OnListener(ListenerKind.Management);
        return app;
    }

    private static object Describe(Tenant tenant, TenantUsage usage) => new
    {
        id = tenant.Id,
        name = tenant.Name,
        weight = tenant.Settings.Weight,
        quotas = new
        {
            requestsPerSecond = tenant.Settings.RequestsPerSecond,
            burst = tenant.Settings.Burst > 0 ? tenant.Settings.Burst : tenant.Settings.RequestsPerSecond,
            maxConcurrent = tenant.Settings.MaxConcurrent,
            maxQueued = tenant.Settings.MaxQueued,
        },
        usage = new
        {
            requests = Interlocked.Read(ref usage.Requests),
            inFlight = Interlocked.Read(ref usage.InFlight),
            answered = Interlocked.Read(ref usage.Answered),
            rejected = new
            {
                rate = Interlocked.Read(ref usage.RejectedRate),
                concurrency = Interlocked.Read(ref usage.RejectedConcurrency),
                queue = Interlocked.Read(ref usage.RejectedQueue),
            },
            queueMs = Interlocked.Read(ref usage.QueueMicros) / 1000.0,
            deviceMs = Interlocked.Read(ref usage.DeviceMicros) / 1000.0,
        },
    };
}
