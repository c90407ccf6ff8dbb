using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Serve.Actors.Configuration;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Grpc.TorchServe;
using Serve.Gateway.Hosting;
using Serve.Gateway.Metrics;
using Serve.Gateway.Security;
using GrpcCode = Grpc.Core.StatusCode;
using RpcException = Grpc.Core.RpcException;

namespace Serve.Standalone.Tests;

/// <summary>
/// <c>GET /metrics</c> on the metrics listener, end to end through the real server: TorchServe's per-model
/// counters and status classes, the latency histogram, per-tenant series, the <c>name[]</c> filter, the text
/// format, and no key. Tests in this class share one server: they compare figures before and after.
/// </summary>
public sealed class MetricsTests(MetricsTests.Factory serve) : IClassFixture<MetricsTests.Factory>, IAsyncLifetime
{
    public const string MeteredKey = "tenant-metered-key-0123456789abcdef01234567";

    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            new("Serve:LoadModels", "linrelu=linrelu.pt?shared_with=metered"),
            new("Serve:Tenants:0:Id", "metered"),
            new("Serve:Tenants:0:KeySha256:0", TenantDirectory.Hash(MeteredKey)),
            new("Serve:Tenants:0:RequestsPerSecond", "1"),
            new("Serve:Tenants:0:Burst", "2"),
        ];
    }

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    public async ValueTask InitializeAsync() => await serve.WaitReadyAsync("linrelu");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static readonly (string, string)[] Linrelu = [("model_name", "linrelu")];

    private async Task<Scrape> ScrapeAsync(string query = "")
    {
        using var metrics = serve.Metrics();
        using var response = await metrics.GetAsync("/metrics" + query, Token);
        var body = await response.Content.ReadAsStringAsync(Token);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {body}");
        Assert.Equal(PrometheusText.ContentType, response.Content.Headers.ContentType?.ToString());
        return Scrape.Parse(body);
    }

    private async Task PredictAsync(HttpClient client)
    {
        using var response = await client.PostAsync("/predictions/linrelu", Json.Body(TestModels.OnesJson), Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>Scrapes until <paramref name="holds"/> does, within the deadline (responses are counted after they are sent).</summary>
    private async Task<Scrape> UntilAsync(Func<Scrape, bool> holds, string what)
    {
        Scrape? last = null;
        await Waiting.UntilAsync(async () => holds(last = await ScrapeAsync()), Deadline, what);
        return last!;
    }

    [Fact]
    public async Task Predictions_over_http_and_grpc_raise_the_torchserve_counters_of_their_model_by_their_number()
    {
        var before = await ScrapeAsync();
        using var inference = serve.Inference();
        const int overHttp = 4;
        for (var i = 0; i < overHttp; i++)
        {
            await PredictAsync(inference);
        }

        var grpc = new InferenceAPIsService.InferenceAPIsServiceClient(serve.GrpcInference());
        await grpc.PredictionsAsync(new PredictionsRequest { ModelName = "linrelu", Input = { ["data"] = ByteString.CopyFromUtf8(TestModels.OnesJson) } },
            cancellationToken: Token);

        var after = await ScrapeAsync();
        Assert.Equal(overHttp + 1, after.Value("ts_inference_requests_total", Linrelu) - before.Value("ts_inference_requests_total", Linrelu));
        Assert.True(after.Value("ts_inference_latency_microseconds", Linrelu) > before.Value("ts_inference_latency_microseconds", Linrelu));
        Assert.True(after.Value("ts_queue_latency_microseconds", Linrelu) >= before.Value("ts_queue_latency_microseconds", Linrelu));

        // TorchServe's labels: the version that answered (never "default" for a registered model) and the host.
        var series = Assert.Single(after.Samples, s => s.Name == "ts_inference_requests_total" && s.Labels["model_name"] == "linrelu");
        Assert.Equal(["hostname", "model_name", "model_version"], series.Labels.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(Environment.MachineName, series.Labels["hostname"]);
        Assert.NotEqual("default", series.Labels["model_version"]);
        Assert.Equal("Torchserve prometheus counter metric with unit: Count", after.Help["ts_inference_requests_total"]);
        Assert.Equal("Torchserve prometheus counter metric with unit: Microseconds", after.Help["ts_inference_latency_microseconds"]);
    }

    [Fact]
    public async Task The_latency_histogram_is_cumulative_and_its_count_rises_by_the_answers()
    {
        const string name = "serve_inference_latency_seconds";
        var before = await ScrapeAsync();
        using var inference = serve.Inference();
        const int answers = 3;
        for (var i = 0; i < answers; i++)
        {
            await PredictAsync(inference);
        }

        var after = await ScrapeAsync();
        Assert.Equal("histogram", after.Types[name]);
        Assert.Equal(answers, after.Value(name + "_count", Linrelu) - before.Value(name + "_count", Linrelu));
        Assert.True(after.Value(name + "_sum", Linrelu) > before.Value(name + "_sum", Linrelu));

        var buckets = after.Samples.Where(s => s.Name == name + "_bucket" && s.Labels["model_name"] == "linrelu").ToList();
        Assert.Equal(ServeMetrics.LatencyBuckets.Length + 1, buckets.Count);
        Assert.Equal("+Inf", buckets[^1].Labels["le"]);
        var bounds = buckets.Select(b => Scrape.ParseValue(b.Labels["le"])).ToList();
        Assert.Equal(bounds.Order(), bounds);
        Assert.True(buckets.Zip(buckets.Skip(1), (lower, upper) => lower.Value <= upper.Value).All(ordered => ordered), "buckets are cumulative");
        Assert.Equal(after.Value(name + "_count", Linrelu), buckets[^1].Value);
        Assert.Equal(after.Value("ts_inference_latency_microseconds", Linrelu) / 1e6, after.Value(name + "_sum", Linrelu), 6);
    }

    [Fact]
    public async Task Answers_of_the_inference_and_management_listeners_count_by_status_class_grpc_included()
    {
        var before = await ScrapeAsync();
        using (var inference = serve.Inference())
        using (var missing = await inference.PostAsync("/predictions/no-such-model", Json.Body(TestModels.OnesJson), Token))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        await UntilAsync(s => s.Value("Requests4XX") >= before.Value("Requests4XX") + 1, "Requests4XX to count the 404");

        before = await ScrapeAsync();
        var grpc = new InferenceAPIsService.InferenceAPIsServiceClient(serve.GrpcInference());
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await grpc.PredictionsAsync(
            new PredictionsRequest { ModelName = "no-such-model", Input = { ["data"] = ByteString.CopyFromUtf8("[1]") } }, cancellationToken: Token));
        Assert.Equal(GrpcCode.NotFound, refused.StatusCode);
        await UntilAsync(s => s.Value("Requests4XX") >= before.Value("Requests4XX") + 1, "Requests4XX to count the gRPC NOT_FOUND");

        before = await ScrapeAsync();
        var (status, _) = await serve.ManageAsync(HttpMethod.Get, "/models");
        Assert.Equal(HttpStatusCode.OK, status);
        var after = await UntilAsync(s => s.Value("Requests2XX") >= before.Value("Requests2XX") + 1, "Requests2XX to count the management answer");

        // TorchServe's labels and help.
        var sample = Assert.Single(after.Samples, s => s.Name == "Requests2XX");
        Assert.Equal("Host", sample.Labels["Level"]);
        Assert.Equal(Environment.MachineName, sample.Labels["Hostname"]);
        // The sample line as TorchServe writes it, which regexes in existing dashboards and tests expect.
        Assert.Matches(new System.Text.RegularExpressions.Regex(@"^Requests2XX\{Level=""Host"",Hostname=""[^""]+""\} [0-9]+\.0$",
            System.Text.RegularExpressions.RegexOptions.Multiline), after.Text);
        Assert.Equal("counter", after.Types["Requests5XX"]);
    }

    [Fact]
    public async Task Scrapes_are_not_counted_as_answers()
    {
        var before = await ScrapeAsync();
        var after = await ScrapeAsync();
        Assert.Equal(before.Value("Requests2XX"), after.Value("Requests2XX"));
    }

    [Fact]
    public async Task A_tenant_that_made_requests_has_its_series_and_its_rate_rejections_rise_when_its_quota_trips()
    {
        (string, string)[] metered = [("tenant", "metered")];
        (string, string)[] rate = [("tenant", "metered"), ("quota", "rate")];
        var before = await ScrapeAsync();

        using var client = serve.Anonymous(8080);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", MeteredKey);
        var tripped = false;
        for (var i = 0; i < 20 && !tripped; i++)
        {
            using var response = await client.PostAsync("/predictions/linrelu", Json.Body(TestModels.OnesJson), Token);
            tripped = response.StatusCode == HttpStatusCode.TooManyRequests;
            Assert.True(tripped || response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}");
        }

        Assert.True(tripped, "the rate quota (1/s, burst 2) never tripped");
        var after = await ScrapeAsync();
        Assert.True(after.Value("serve_tenant_requests_total", metered) >= before.Value("serve_tenant_requests_total", metered) + 1);
        Assert.True(after.Value("serve_tenant_answered_total", metered) >= before.Value("serve_tenant_answered_total", metered) + 1);
        Assert.True(after.Value("serve_tenant_rejections_total", rate) >= before.Value("serve_tenant_rejections_total", rate) + 1);
        Assert.True(after.Value("serve_tenant_device_seconds_total", metered) > 0);
        Assert.Contains(after.Samples, s => s.Name == "serve_tenant_queue_seconds_total" && s.Labels["tenant"] == "metered");
        Assert.Equal(["concurrency", "queue", "rate"],
            after.Samples.Where(s => s.Name == "serve_tenant_rejections_total" && s.Labels["tenant"] == "metered").Select(s => s.Labels["quota"]).Order(StringComparer.Ordinal));
        Assert.Equal("gauge", after.Types["serve_tenant_in_flight"]);
        await UntilAsync(s => s.Value("serve_tenant_in_flight", metered) == 0, "the tenant's requests to leave the in-flight gauge");
    }

    [Fact]
    public async Task The_name_filter_returns_only_the_families_asked()
    {
        var some = await ScrapeAsync("?name[]=ts_inference_requests_total&name[]=serve_tenant_in_flight");
        Assert.Equal(["serve_tenant_in_flight", "ts_inference_requests_total"], some.Types.Keys.Order(StringComparer.Ordinal));
        Assert.All(some.Samples, s => Assert.Contains(s.Name, some.Types.Keys));

        var unknown = await ScrapeAsync("?name[]=no_such_metric");
        Assert.Empty(unknown.Types);
        Assert.Empty(unknown.Samples);
    }

    [Fact]
    public async Task Every_family_is_described_sorted_by_name_and_every_line_parses()
    {
        using (var inference = serve.Inference())
        {
            await PredictAsync(inference);
        }

        var scrape = await ScrapeAsync();
        string[] expected =
        [
            "Requests2XX", "Requests4XX", "Requests5XX", "serve_inference_latency_seconds", "serve_tenant_answered_total",
            "serve_tenant_device_seconds_total", "serve_tenant_in_flight", "serve_tenant_queue_seconds_total", "serve_tenant_rejections_total",
            "serve_tenant_requests_total", "ts_inference_latency_microseconds", "ts_inference_requests_total", "ts_queue_latency_microseconds",
        ];
        Assert.Equal(expected, scrape.Order);
        Assert.Equal(expected.Order(StringComparer.Ordinal), scrape.Order);
        Assert.All(expected, name => Assert.False(string.IsNullOrEmpty(scrape.Help[name]), name));
        Assert.Contains(scrape.Samples, s => s.Name == "serve_tenant_requests_total" && s.Labels["tenant"] == Tenant.AdminId);
    }

    [Fact]
    public async Task Metrics_need_no_key_while_inference_still_does_and_answer_only_on_the_metrics_listener()
    {
        using var metrics = serve.Metrics();
        Assert.Null(metrics.DefaultRequestHeaders.Authorization);
        using var scraped = await metrics.GetAsync("/metrics", Token);
        Assert.Equal(HttpStatusCode.OK, scraped.StatusCode);

        using var anonymous = serve.Anonymous(8080);
        using var refused = await anonymous.PostAsync("/predictions/linrelu", Json.Body(TestModels.OnesJson), Token);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);

        using var inference = serve.Inference();
        using var management = serve.Management();
        Assert.Equal(HttpStatusCode.NotFound, (await inference.GetAsync("/metrics", Token)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await management.GetAsync("/metrics", Token)).StatusCode);
    }
}

/// <summary><c>enable_metrics_api=false</c>: the metrics listener answers nothing (TorchServe starts no metrics server).</summary>
public sealed class MetricsDisabledTests(MetricsDisabledTests.Factory serve) : IClassFixture<MetricsDisabledTests.Factory>
{
    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
            [new("Serve:LoadModels", "linrelu=linrelu.pt"), new("Serve:EnableMetricsApi", "false")];
    }

    [Fact]
    public async Task Metrics_and_their_description_are_404()
    {
        using var metrics = serve.Metrics();
        var token = TestContext.Current.CancellationToken;
        Assert.Equal(HttpStatusCode.NotFound, (await metrics.GetAsync("/metrics", token)).StatusCode);
        using var options = new HttpRequestMessage(HttpMethod.Options, "/");
        Assert.Equal(HttpStatusCode.NotFound, (await metrics.SendAsync(options, token)).StatusCode);
    }

    [Fact]
    public void No_metrics_listener_is_opened()
    {
        Assert.Contains(ServeGatewayExtensions.Addresses(new GatewayOptions()), a => a.Kind == ListenerKind.Metrics);
        Assert.DoesNotContain(ServeGatewayExtensions.Addresses(new GatewayOptions { EnableMetricsApi = false }), a => a.Kind == ListenerKind.Metrics);
    }
}

/// <summary>The exporter without a server: the text format's escaping, the histogram, the modes and the configuration keys.</summary>
public sealed class MetricsUnitTests
{
    [Fact]
    public void Label_values_escape_backslash_quote_and_newline_and_read_back()
    {
        const string awkward = "a\\b\"c\nd";
        Assert.Equal("a\\\\b\\\"c\\nd", PrometheusText.EscapeLabelValue(awkward));
        Assert.Equal("line\\\\one\\nline \"two\"", PrometheusText.EscapeHelp("line\\one\nline \"two\""));

        var text = PrometheusText.Write(
        [
            new MetricFamily("zeta", MetricType.Gauge, "Last.", [new MetricSample("zeta", [], 1.5)]),
            new MetricFamily("alpha_total", MetricType.Counter, "Help with\na newline.",
                [new MetricSample("alpha_total", [new("model_name", awkward), new("tenant", "t")], 3)]),
        ]);

        Assert.Equal(
            "# HELP alpha_total Help with\\na newline.\n# TYPE alpha_total counter\nalpha_total{model_name=\"a\\\\b\\\"c\\nd\",tenant=\"t\"} 3.0\n" +
            "# HELP zeta Last.\n# TYPE zeta gauge\nzeta 1.5\n", text);
        var scrape = Scrape.Parse(text);
        Assert.Equal(awkward, scrape.Samples[0].Labels["model_name"]);
        Assert.Equal(["alpha_total", "zeta"], scrape.Order);
    }

    [Theory]
    [InlineData(double.PositiveInfinity, "+Inf")]
    [InlineData(double.NegativeInfinity, "-Inf")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(0.0025, "0.0025")]
    [InlineData(7.0, "7.0")]
    [InlineData(0.0, "0.0")]
    [InlineData(1.5, "1.5")]
    [InlineData(0.001, "0.001")]
    [InlineData(1500.0, "1500.0")]
    [InlineData(9999999.0, "9999999.0")]
    [InlineData(-42.0, "-42.0")]
    [InlineData(10000000.0, "1.0E7")]
    [InlineData(12345678.0, "1.2345678E7")]
    [InlineData(0.00015, "1.5E-4")]
    [InlineData(1e-10, "1.0E-10")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157E308")]
    public void Values_are_written_as_prometheus_reads_them(double value, string expected) =>
        Assert.Equal(expected, PrometheusText.FormatValue(value));

    private static ServeMetrics Metrics(string mode = "prometheus") =>
        new(new TenantQuotas(), Options.Create(new GatewayOptions { MetricsMode = mode }));

    private static InferenceSucceeded Answer(long queueMicros) =>
        new("r", new DocumentOutput("application/json", []), new InferenceTiming(queueMicros, 10, 1, "m/2.0/0", "cpu:0"));

    [Fact]
    public void The_histogram_counts_each_answer_once_in_cumulative_buckets()
    {
        var metrics = Metrics();
        var model = Entry("m", "2.0");
        metrics.RecordInference("t", model, System.Diagnostics.Stopwatch.GetTimestamp(), Answer(100));
        metrics.RecordInference("t", model, System.Diagnostics.Stopwatch.GetTimestamp() - 20 * System.Diagnostics.Stopwatch.Frequency, Answer(200));
        metrics.RecordInference("t", model, System.Diagnostics.Stopwatch.GetTimestamp(), new InferenceFailed("r", new ServeError(ServeErrorKind.BadInput, "no")));

        var scrape = Scrape.Parse(metrics.Render([]));
        (string, string)[] labels = [("model_name", "m"), ("model_version", "2.0")];
        Assert.Equal(3, scrape.Value("ts_inference_requests_total", labels));
        Assert.Equal(300, scrape.Value("ts_queue_latency_microseconds", labels));
        Assert.Equal(1, scrape.Value("serve_inference_latency_seconds_bucket", [.. labels, ("le", "10.0")]));
        Assert.Equal(2, scrape.Value("serve_inference_latency_seconds_bucket", [.. labels, ("le", "+Inf")]));
        Assert.Equal(2, scrape.Value("serve_inference_latency_seconds_count", labels));
        Assert.True(scrape.Value("serve_inference_latency_seconds_sum", labels) >= 20);
        Assert.Equal(2, scrape.Value("serve_tenant_answered_total", [("tenant", "t")]));
    }

    [Fact]
    public void The_version_is_the_answering_replicas_else_the_one_the_request_resolved_to()
    {
        var metrics = Metrics();
        var refused = new InferenceFailed("r", new ServeError(ServeErrorKind.Overloaded, "full"));
        metrics.RecordInference("t", Entry("m", "1.0"), System.Diagnostics.Stopwatch.GetTimestamp(), Answer(1));
        metrics.RecordInference("t", Entry("m", "3.0"), System.Diagnostics.Stopwatch.GetTimestamp(), refused);
        var scrape = Scrape.Parse(metrics.Render([]));
        Assert.Equal(1, scrape.Value("ts_inference_requests_total", [("model_version", "2.0")]));
        Assert.Equal(1, scrape.Value("ts_inference_requests_total", [("model_version", "3.0")]));
        Assert.DoesNotContain(scrape.Samples, s => s.Name == "ts_inference_requests_total" && s.Labels["model_version"] == "1.0");
    }

    private static CatalogEntry Entry(string model, string version) =>
        new(new ModelDefinition(model, version, new TorchScriptSource("m.pt"), BuiltInHandlers.Tensor, 1, 1, 0, 10, 30, null), true, []);

    [Theory]
    [InlineData("legacy", false)]
    [InlineData("LEGACY", false)]
    [InlineData("prometheus", true)]
    [InlineData("log", true)]
    public void Legacy_mode_exports_only_torchserves_three_families(string mode, bool everything)
    {
        var families = Metrics(mode).Collect().Select(f => f.Name).ToList();
        Assert.Equal(everything, families.Count > ServeMetrics.LegacyFamilies.Length);
        Assert.Subset(families.ToHashSet(), ServeMetrics.LegacyFamilies.ToHashSet());
    }

    [Fact]
    public void A_metrics_mode_serve_does_not_know_stops_the_start()
    {
        var payload = new Serve.Actors.Hosting.ServeClusterOptions().MaximumPayloadBytes;
        Assert.Empty(ServeGatewayExtensions.ValidateGateway(new GatewayOptions { MetricsMode = "Legacy" }, payload));
        Assert.Contains(ServeGatewayExtensions.ValidateGateway(new GatewayOptions { MetricsMode = "statsd" }, payload),
            p => p.Contains("Serve:MetricsMode must be prometheus, legacy, log, not 'statsd'", StringComparison.Ordinal));
    }

    [Fact]
    public void Torchserve_metrics_keys_become_serves()
    {
        var result = TorchServeConfig.Translate("config.properties", new Dictionary<string, string>
        {
            ["enable_metrics_api"] = "false",
            ["metrics_mode"] = "legacy",
            ["metrics_config"] = "metrics.yaml",
        }, _ => null);

        Assert.Equal("false", result.Settings["Serve:EnableMetricsApi"]);
        Assert.Equal("legacy", result.Settings["Serve:MetricsMode"]);
        Assert.Contains(result.NotApplied, n => n.StartsWith("metrics_config (", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(GrpcCode.OK, 200)]
    [InlineData(GrpcCode.NotFound, 404)]
    [InlineData(GrpcCode.InvalidArgument, 400)]
    [InlineData(GrpcCode.Unauthenticated, 401)]
    [InlineData(GrpcCode.ResourceExhausted, 429)]
    [InlineData(GrpcCode.Unavailable, 503)]
    [InlineData(GrpcCode.Unimplemented, 404)]
    [InlineData(GrpcCode.Internal, 500)]
    public void A_grpc_code_counts_as_the_http_status_the_error_table_gives_it(GrpcCode code, int status) =>
        Assert.Equal(status, ErrorTable.HttpStatus(code));
}

/// <summary>
/// A scrape read as Prometheus would: comment lines are <c># HELP name text</c> or <c># TYPE name type</c>,
/// every other line <c>name{label="value",...} value</c> with a float value, under its family's TYPE line.
/// </summary>
internal sealed partial class Scrape
{
    public sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    public List<Sample> Samples { get; } = [];

    /// <summary>The text as scraped.</summary>
    public string Text { get; private init; } = string.Empty;

    public Dictionary<string, string> Types { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, string> Help { get; } = new(StringComparer.Ordinal);

    /// <summary>The families in the order they came.</summary>
    public List<string> Order { get; } = [];

    public static Scrape Parse(string text)
    {
        var scrape = new Scrape { Text = text };
        Assert.True(text.Length == 0 || text.EndsWith('\n'), "the text ends with a newline");
        string? family = null;
        foreach (var line in text.Split('\n').SkipLast(1))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                var parts = line["# HELP ".Length..].Split(' ', 2);
                Assert.Matches(MetricName(), parts[0]);
                scrape.Help[parts[0]] = parts.Length > 1 ? parts[1] : string.Empty;
                continue;
            }

            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line["# TYPE ".Length..].Split(' ');
                Assert.Equal(2, parts.Length);
                Assert.Contains(parts[1], new[] { "counter", "gauge", "histogram", "summary", "untyped" });
                Assert.False(scrape.Types.ContainsKey(parts[0]), $"family {parts[0]} appears twice");
                scrape.Types[parts[0]] = parts[1];
                scrape.Order.Add(parts[0]);
                family = parts[0];
                continue;
            }

            Assert.False(line.StartsWith('#'), $"unknown comment: {line}");
            var match = SampleLine().Match(line);
            Assert.True(match.Success, $"not a sample line: {line}");
            var name = match.Groups["name"].Value;
            Assert.True(family is not null && (name == family || (scrape.Types[family] == "histogram" &&
                name is var n && (n == family + "_bucket" || n == family + "_sum" || n == family + "_count"))), $"{name} outside its family");
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (Match label in Label().Matches(match.Groups["labels"].Value))
            {
                labels.Add(label.Groups["name"].Value, Unescape(label.Groups["value"].Value));
            }

            scrape.Samples.Add(new Sample(name, labels, ParseValue(match.Groups["value"].Value)));
        }

        return scrape;
    }

    public static double ParseValue(string text) => text switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value : throw new FormatException($"not a float: {text}"),
    };

    /// <summary>The sum of the samples named <paramref name="name"/> that carry <paramref name="labels"/> (0 when none does).</summary>
    public double Value(string name, params (string Name, string Value)[] labels) =>
        Samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value)).Sum(s => s.Value);

    private static string Unescape(string value) =>
        EscapedChar().Replace(value, m => m.Value[1] switch { 'n' => "\n", var c => c.ToString() });

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (?<value>\S+)$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""(?<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?<value>(?:[^"\\\n]|\\[\\"n])*)""")]
    private static partial Regex Label();

    [GeneratedRegex(@"\\[\\""n]")]
    private static partial Regex EscapedChar();
}
