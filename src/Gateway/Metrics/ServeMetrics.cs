using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Hosting;
using Serve.Gateway.Security;

namespace Serve.Gateway.Metrics;

/// <summary>
/// This gateway's figures for <c>GET /metrics</c>: TorchServe's per-model counters and HTTP status classes,
/// and what TorchServe lacks (a latency histogram per model; per-tenant use, read from
/// <see cref="TenantQuotas"/> at scrape time so nothing is counted twice). Recording is a few interlocked
/// operations on the request path; all the work of rendering is done by the scrape. Every figure is this
/// gateway's since it started: with several gateways, Prometheus sums them.
/// </summary>
public sealed class ServeMetrics(TenantQuotas quotas, IOptions<GatewayOptions> options)
{
    /// <summary>Upper bounds of the latency histogram's buckets, in seconds (then +Inf): 1 ms to 10 s.</summary>
    public static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    /// <summary>The families TorchServe's <c>legacy</c> metrics mode exports, and nothing else.</summary>
    public static readonly string[] LegacyFamilies = ["ts_inference_requests_total", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds"];

    private static readonly string Hostname = Environment.MachineName;

    /// <summary>TorchServe's status-class counters, in the order of <see cref="_responses"/>.</summary>
    private static readonly string[] ResponseFamilies = ["Requests2XX", "Requests4XX", "Requests5XX"];

    private readonly ConcurrentDictionary<(string Model, string Version), ModelSeries> _models = new();
    private readonly long[] _responses = new long[ResponseFamilies.Length];
    private readonly bool _legacy = options.Value.MetricsMode.Equals(GatewayOptions.LegacyMetricsMode, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Records one inference reply: for the calling tenant (its <see cref="TenantUsage"/>) and for the model
    /// version that answered it (the replica says which; a refusal counts for the version the request was
    /// resolved to). Called once per request by the shared inference path; <paramref name="startedTimestamp"/>
    /// is <see cref="Stopwatch.GetTimestamp"/> when the call began.
    /// </summary>
    public void RecordInference(string tenant, CatalogEntry model, long startedTimestamp, InferenceReply reply)
    {
        quotas.UsageOf(tenant).Record(reply);
        var version = reply is InferenceSucceeded { Timing.Replica: var replica } && ReplicaId.TryParse(replica, out var answered)
            ? answered.Version
            : model.Definition.Version;
        var series = _models.GetOrAdd((model.Definition.Name, version), _ => new ModelSeries());
        Interlocked.Increment(ref series.Requests);
        if (reply is InferenceSucceeded { Timing: var timing })
        {
            var elapsed = Stopwatch.GetElapsedTime(startedTimestamp);
            Interlocked.Add(ref series.LatencyMicros, (long)elapsed.TotalMicroseconds);
            Interlocked.Add(ref series.QueueMicros, timing.QueueMicros);
            var bucket = Array.FindIndex(LatencyBuckets, bound => elapsed.TotalSeconds <= bound);
            Interlocked.Increment(ref series.Buckets[bucket < 0 ? LatencyBuckets.Length : bucket]);
        }
    }

    /// <summary>Counts one response by its HTTP status class (TorchServe's Requests2XX, Requests4XX, Requests5XX).</summary>
    public void RecordResponse(int status)
    {
        if (status is >= 200 and < 300)
        {
            Interlocked.Increment(ref _responses[0]);
        }
        else if (status is >= 400 and < 500)
        {
            Interlocked.Increment(ref _responses[1]);
        }
        else if (status >= 500)
        {
            Interlocked.Increment(ref _responses[2]);
        }
    }

    /// <summary>The exposition text: every family, or only those named in <paramref name="names"/> when it has any.</summary>
    public string Render(IReadOnlyCollection<string?> names) =>
        PrometheusText.Write(Collect().Where(f => names.Count == 0 || names.Contains(f.Name)));

    /// <summary>Every family as it is now (only TorchServe's legacy three in <c>legacy</c> mode).</summary>
    public IReadOnlyList<MetricFamily> Collect()
    {
        var models = _models.OrderBy(m => m.Key.Model, StringComparer.Ordinal).ThenBy(m => m.Key.Version, StringComparer.Ordinal).ToList();
        List<MetricFamily> families =
        [
            TorchServeCounter(LegacyFamilies[0], "Count", models, s => Interlocked.Read(ref s.Requests)),
            TorchServeCounter(LegacyFamilies[1], "Microseconds", models, s => Interlocked.Read(ref s.LatencyMicros)),
            TorchServeCounter(LegacyFamilies[2], "Microseconds", models, s => Interlocked.Read(ref s.QueueMicros)),
        ];
        if (_legacy)
        {
            return families;
        }

        for (var i = 0; i < _responses.Length; i++)
        {
            families.Add(new MetricFamily(ResponseFamilies[i], MetricType.Counter, TorchServeHelp("Count"),
                [new(ResponseFamilies[i], [new("Level", "Host"), new("Hostname", Hostname)], Interlocked.Read(ref _responses[i]))]));
        }

        families.Add(new MetricFamily("serve_inference_latency_seconds", MetricType.Histogram,
            "Arrival-to-answer time of the model's answered inference requests on this gateway, in seconds (HTTP: from the request's start; gRPC: from the decoded message).",
            [.. models.SelectMany(m => Histogram("serve_inference_latency_seconds", ModelLabels(m.Key), m.Value))]));

        var tenants = quotas.AllUsage().OrderBy(t => t.Tenant, StringComparer.Ordinal).ToList();
        families.Add(TenantFamily("serve_tenant_requests_total", MetricType.Counter,
            "Inference requests of the tenant admitted past its rate and concurrency quotas on this gateway.", tenants, u => Interlocked.Read(ref u.Requests)));
        families.Add(TenantFamily("serve_tenant_answered_total", MetricType.Counter,
            "Inference requests of the tenant answered by a replica.", tenants, u => Interlocked.Read(ref u.Answered)));
        families.Add(TenantFamily("serve_tenant_in_flight", MetricType.Gauge,
            "Inference requests of the tenant admitted and not yet answered on this gateway.", tenants, u => Interlocked.Read(ref u.InFlight)));
        families.Add(TenantFamily("serve_tenant_queue_seconds_total", MetricType.Counter,
            "Time the tenant's answered requests waited in replicas' queues, in seconds.", tenants, u => Interlocked.Read(ref u.QueueMicros) / 1e6));
        families.Add(TenantFamily("serve_tenant_device_seconds_total", MetricType.Counter,
            "Device time of the batches that answered the tenant's requests, in seconds.", tenants, u => Interlocked.Read(ref u.DeviceMicros) / 1e6));
        families.Add(new MetricFamily("serve_tenant_rejections_total", MetricType.Counter,
            "Inference requests of the tenant refused with 429, by the quota that refused them (rate, concurrency, or its queue share in a replica).",
            [.. tenants.SelectMany(t => new[]
            {
                RejectionSample(t.Tenant, "rate", Interlocked.Read(ref t.Usage.RejectedRate)),
                RejectionSample(t.Tenant, "concurrency", Interlocked.Read(ref t.Usage.RejectedConcurrency)),
                RejectionSample(t.Tenant, "queue", Interlocked.Read(ref t.Usage.RejectedQueue)),
            })]));
        return families;
    }

    /// <summary>TorchServe's HELP text, so dashboards made for it read the same.</summary>
    private static string TorchServeHelp(string unit) => $"Torchserve prometheus counter metric with unit: {unit}";

    private static MetricFamily TorchServeCounter(string name, string unit, List<KeyValuePair<(string Model, string Version), ModelSeries>> models,
        Func<ModelSeries, long> value) =>
        new(name, MetricType.Counter, TorchServeHelp(unit),
            [.. models.Select(m => new MetricSample(name, [.. ModelLabels(m.Key), new("hostname", Hostname)], value(m.Value)))]);

    private static KeyValuePair<string, string>[] ModelLabels((string Model, string Version) key) =>
        [new("model_name", key.Model), new("model_version", key.Version)];

    /// <summary>Cumulative buckets, then the sum and the count; the count is the +Inf bucket, so the two always agree.</summary>
    private static IEnumerable<MetricSample> Histogram(string name, KeyValuePair<string, string>[] labels, ModelSeries series)
    {
        long cumulative = 0;
        for (var i = 0; i <= LatencyBuckets.Length; i++)
        {
            cumulative += Interlocked.Read(ref series.Buckets[i]);
            var bound = i < LatencyBuckets.Length ? PrometheusText.FormatValue(LatencyBuckets[i]) : "+Inf";
            yield return new MetricSample(name + "_bucket", [.. labels, new("le", bound)], cumulative);
        }

        yield return new MetricSample(name + "_sum", labels, Interlocked.Read(ref series.LatencyMicros) / 1e6);
        yield return new MetricSample(name + "_count", labels, cumulative);
    }

    private static MetricFamily TenantFamily(string name, MetricType type, string help, List<(string Tenant, TenantUsage Usage)> tenants,
        Func<TenantUsage, double> value) =>
        new(name, type, help, [.. tenants.Select(t => new MetricSample(name, [new("tenant", t.Tenant)], value(t.Usage)))]);

    private static MetricSample RejectionSample(string tenant, string quota, long value) =>
        new("serve_tenant_rejections_total", [new("tenant", tenant), new("quota", quota)], value);

    /// <summary>One model version's counts; fields, so they can be updated with <see cref="Interlocked"/>.</summary>
    private sealed class ModelSeries
    {
        public long Requests;
        public long LatencyMicros;
        public long QueueMicros;
        public readonly long[] Buckets = new long[LatencyBuckets.Length + 1];
    }
}
