using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.RateLimiting;
using Serve.Actors.Protocol;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Security;

/// <summary>
/// Each tenant's rate (token bucket: <c>RequestsPerSecond</c>, <c>Burst</c>) and concurrency
/// (<c>MaxConcurrent</c>) on the inference listeners, with .NET's rate limiters partitioned by tenant. Limits
/// are per gateway: with N gateways a tenant gets up to N times its quota, so give each gateway its share.
/// Over quota: 429 with <c>Retry-After</c> (gRPC: RESOURCE_EXHAUSTED) and a message naming the quota.
/// </summary>
public sealed class TenantQuotas : IDisposable
{
    // Partitions are keyed by the tenant and its limits, so a tenant re-created with other limits gets a new one.
    private readonly PartitionedRateLimiter<Tenant> _rate = PartitionedRateLimiter.Create<Tenant, string>(tenant =>
        tenant.Settings.RequestsPerSecond > 0
            ? RateLimitPartition.GetTokenBucketLimiter($"{tenant.Id}/{tenant.Settings.RequestsPerSecond}/{tenant.Settings.Burst}", _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = tenant.Settings.Burst > 0 ? tenant.Settings.Burst : tenant.Settings.RequestsPerSecond,
                TokensPerPeriod = tenant.Settings.RequestsPerSecond,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            })
            : RateLimitPartition.GetNoLimiter(tenant.Id));

    private readonly PartitionedRateLimiter<Tenant> _concurrency = PartitionedRateLimiter.Create<Tenant, string>(tenant =>
        tenant.Settings.MaxConcurrent > 0
            ? RateLimitPartition.GetConcurrencyLimiter($"{tenant.Id}/{tenant.Settings.MaxConcurrent}", _ => new ConcurrencyLimiterOptions
            {
                PermitLimit = tenant.Settings.MaxConcurrent,
                QueueLimit = 0,
            })
            : RateLimitPartition.GetNoLimiter(tenant.Id));

    private readonly ConcurrentDictionary<string, TenantUsage> _usage = new(StringComparer.Ordinal);

    /// <summary>A tenant's counts on this gateway, to count into (from now on it is among <see cref="AllUsage"/>).</summary>
    public TenantUsage UsageOf(string tenant) => _usage.GetOrAdd(tenant, _ => new TenantUsage());

    /// <summary>A tenant's counts to read, for <c>GET /tenants</c>: zeros for one that never called, without adding it.</summary>
    public TenantUsage ReadUsage(string tenant) => _usage.GetValueOrDefault(tenant) ?? new TenantUsage();

    /// <summary>Every tenant counted on this gateway so far, for <c>GET /metrics</c> (which reads, never counts).</summary>
    public IEnumerable<(string Tenant, TenantUsage Usage)> AllUsage() => _usage.Select(u => (u.Key, u.Value));

    /// <summary>Admits the request or answers the refusal; the lease is held until the request ends.</summary>
    public async Task<RateLimitLease?> AdmitAsync(HttpContext context, Tenant tenant)
    {
        var admission = TryAdmit(tenant);
        if (admission.Lease is null)
        {
            await RefuseAsync(context, admission.RetryAfter, admission.Refusal!.Message);
        }

        return admission.Lease;
    }

    /// <summary>
    /// One request's rate token and concurrency permit (held until the lease is disposed), or why not and
    /// when to retry. HTTP and unary gRPC calls are admitted by the middleware; each message of a stream
    /// that carries many (StreamPredictions2) is admitted on its own.
    /// </summary>
    public (RateLimitLease? Lease, ServeError? Refusal, TimeSpan RetryAfter) TryAdmit(Tenant tenant)
    {
        var usage = UsageOf(tenant.Id);
        var concurrency = _concurrency.AttemptAcquire(tenant);
        if (!concurrency.IsAcquired)
        {
            concurrency.Dispose();
            Interlocked.Increment(ref usage.RejectedConcurrency);
            return (null, new ServeError(ServeErrorKind.QuotaExceeded,
                $"Tenant \"{tenant.Id}\" has {tenant.Settings.MaxConcurrent} requests in flight, its MaxConcurrent quota; retry when one finishes"),
                TimeSpan.FromSeconds(1));
        }

        using var rate = _rate.AttemptAcquire(tenant);
        if (!rate.IsAcquired)
        {
            concurrency.Dispose();
            Interlocked.Increment(ref usage.RejectedRate);
            var retryAfter = rate.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
            return (null, new ServeError(ServeErrorKind.QuotaExceeded,
                $"Tenant \"{tenant.Id}\" is over its RequestsPerSecond quota ({tenant.Settings.RequestsPerSecond}/s, burst " +
                $"{(tenant.Settings.Burst > 0 ? tenant.Settings.Burst : tenant.Settings.RequestsPerSecond)}); retry after the Retry-After seconds"),
                retryAfter);
        }

        Interlocked.Increment(ref usage.Requests);
        Interlocked.Increment(ref usage.InFlight);
        return (new CountedLease(concurrency, usage), null, TimeSpan.Zero);
    }

    public static Task RefuseAsync(HttpContext context, TimeSpan retryAfter, string message)
    {
        context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        return ErrorTable.RefuseAsync(context, new ServeError(ServeErrorKind.QuotaExceeded, message));
    }

    public void Dispose()
    {
        _rate.Dispose();
        _concurrency.Dispose();
    }

    /// <summary>The concurrency permit, and the in-flight count it keeps.</summary>
    private sealed class CountedLease(RateLimitLease inner, TenantUsage usage) : RateLimitLease
    {
        public override bool IsAcquired => true;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Interlocked.Decrement(ref usage.InFlight);
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>One tenant's counts on this gateway since it started.</summary>
public sealed class TenantUsage
{
    public long Requests;
    public long InFlight;
    public long RejectedRate;
    public long RejectedConcurrency;
    public long RejectedQueue;
    public long Answered;
    public long QueueMicros;
    public long DeviceMicros;

    /// <summary>Adds what the replica said about one answered request (and a queue refusal).</summary>
    public void Record(InferenceReply reply)
    {
        switch (reply)
        {
            case InferenceSucceeded { Timing: var timing }:
                Interlocked.Increment(ref Answered);
                Interlocked.Add(ref QueueMicros, timing.QueueMicros);
                Interlocked.Add(ref DeviceMicros, timing.DeviceMicros);
                break;
            case InferenceFailed { Error.Kind: ServeErrorKind.QuotaExceeded }:
                Interlocked.Increment(ref RejectedQueue);
                break;
        }
    }
}

/// <summary>Where a request's tenant is kept for the rest of the request.</summary>
public static class TenantContext
{
    private const string ItemKey = "serve.tenant";

    public static void Set(HttpContext context, Tenant tenant) => context.Items[ItemKey] = tenant;

    /// <summary>The request's tenant: the admin tenant when no tenant key was presented.</summary>
    public static Tenant Of(HttpContext context) => context.Items.TryGetValue(ItemKey, out var tenant) && tenant is Tenant found ? found : Tenant.Admin;

    /// <summary>Applies the tenant's rate and concurrency quotas to inference calls; runs after token authorization.</summary>
    public static IApplicationBuilder UseTenantQuotas(this IApplicationBuilder app)
    {
        var quotas = app.ApplicationServices.GetRequiredService<TenantQuotas>();
        return app.Use(async (context, next) =>
        {
            if (TokenAuthorization.RequiredKey(context) != KeyKind.Inference || context.GetEndpoint() is not { } endpoint
                || endpoint.Metadata.GetMetadata<AdmitsEachMessageAttribute>() is not null)
            {
                await next(context);
                return;
            }

            using var lease = await quotas.AdmitAsync(context, Of(context));
            if (lease is not null)
            {
                await next(context);
            }
        });
    }
}

/// <summary>
/// On a streaming gRPC method that carries many requests: the tenant's quotas are taken per message by the
/// method itself, not once for the whole call by the middleware (which would let one stream run without limit).
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class AdmitsEachMessageAttribute : Attribute;
