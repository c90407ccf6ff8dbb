using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using Serve.Gateway.Security;

namespace Serve.Bench;

/// <summary>
/// The noisy-neighbour benchmark: tenant B sends at a steady, modest rate (open loop) to a model it shares
/// with tenant A, which floods it (closed loop, many clients). B's latency and throughput are measured
/// alone, then with A flooding, with fair scheduling on and then off (a fresh server for each setting).
/// Same weights for both tenants; the model is resnet18 on a CPU slot, so the device is the bottleneck.
/// </summary>
public sealed class NoisyNeighbour(TimeSpan warmUp, TimeSpan duration, TextWriter log)
{
    private const string KeyA = "bench-tenant-a-0123456789abcdef0123456789ab";
    private const string KeyB = "bench-tenant-b-0123456789abcdef0123456789ab";

    public sealed record Row(string Scenario, double BRate, double BP50, double BP99, long BErrors, double AThroughput, long AErrors);

    public async Task<IReadOnlyList<Row>> RunAsync(int floodClients, double quietPerSecond, int batchSize, CancellationToken cancellationToken)
    {
        var rows = new List<Row>();
        var model = BenchModel.ResNet18();
        foreach (var fair in new[] { true, false })
        {
            var store = Directory.CreateTempSubdirectory("serve-noisy-").FullName;
            var port = FreePorts.Take(1)[0];
            var environment = new Dictionary<string, string>
            {
                ["Serve__Models__0__Name"] = "resnet18",
                ["Serve__Models__0__Architecture"] = "resnet18",
                ["Serve__Models__0__Handler"] = "image_classifier",
                ["Serve__Models__0__BatchSize"] = batchSize.ToString(CultureInfo.InvariantCulture),
                ["Serve__Models__0__MaxBatchDelay"] = "0",
                ["Serve__Models__0__SharedWith__0"] = "a",
                ["Serve__Models__0__SharedWith__1"] = "b",
                ["Serve__Tenants__0__Id"] = "a",
                ["Serve__Tenants__0__KeySha256__0"] = TenantDirectory.Hash(KeyA),
                ["Serve__Tenants__1__Id"] = "b",
                ["Serve__Tenants__1__KeySha256__0"] = TenantDirectory.Hash(KeyB),
                ["Serve__Node__FairScheduling"] = fair ? "true" : "false",
                ["Serve__Registry__Journal"] = "memory",
                ["Serve__DefaultModel__Enabled"] = "false",
                ["Logging__LogLevel__Default"] = "Warning",
            };
            var ports = FreePorts.Take(4);
            await using var server = ServeProcess.Start("serve", ServeProcess.BuiltDll("Standalone", "Serve.Standalone.dll"), environment,
                "--inference-address", $"http://127.0.0.1:{port}", "--management-address", $"http://127.0.0.1:{ports[0]}",
                "--metrics-address", $"http://127.0.0.1:{ports[1]}", "--grpc-inference-address", $"http://127.0.0.1:{ports[2]}",
                "--grpc-management-address", $"http://127.0.0.1:{ports[3]}", "--cluster-port", "0", "--data-dir", Path.Combine(store, "data"));
            try
            {
                var url = new Uri($"http://127.0.0.1:{port}/predictions/resnet18");
                using var clientB = Client(KeyB, 4);
                await Waiting.UntilAsync(async () => (await SendAsync(clientB, url, model, cancellationToken)) is null,
                    TimeSpan.FromSeconds(120), "resnet18 to serve tenant b", () => server.Tail());
                var setting = fair ? "fair scheduling on" : "fair scheduling off (FIFO)";
                if (fair)
                {
                    var alone = await QuietAsync(clientB, url, model, quietPerSecond, cancellationToken);
                    rows.Add(new Row("B alone", alone.Rate, alone.P50, alone.P99, alone.Errors, double.NaN, 0));
                    log.WriteLine($"   B alone: {alone.Rate:0.0}/s, p50 {alone.P50:0.0} ms, p99 {alone.P99:0.0} ms");
                }

                using var clientA = Client(KeyA, floodClients);
                using var stopFlood = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var flood = LoadGenerator.ClosedLoopAsync(token => SendAsync(clientA, url, model, token), floodClients, warmUp,
                    duration + warmUp, stopFlood.Token);
                // B starts once A's flood has filled the queue.
                await Task.Delay(warmUp, cancellationToken);
                var quiet = await QuietAsync(clientB, url, model, quietPerSecond, cancellationToken);
                var flooded = await flood;
                rows.Add(new Row($"B with A flooding ({floodClients} clients), {setting}", quiet.Rate, quiet.P50, quiet.P99, quiet.Errors,
                    flooded.Throughput, flooded.Errors));
                log.WriteLine($"   {setting}: B {quiet.Rate:0.0}/s, p50 {quiet.P50:0.0} ms, p99 {quiet.P99:0.0} ms; A {flooded.Throughput:0.0}/s");
            }
            finally
            {
                Directory.Delete(store, recursive: true);
            }
        }

        return rows;
    }

    public static string Table(IReadOnlyList<Row> rows)
    {
        var text = new StringBuilder();
        text.AppendLine("| scenario | B req/s | B p50 ms | B p99 ms | B errors | A req/s | A errors |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var row in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Scenario} | {row.BRate:0.0} | {row.BP50:0.0} | {row.BP99:0.0} | {row.BErrors} | {(double.IsNaN(row.AThroughput) ? "" : row.AThroughput.ToString("0.0", CultureInfo.InvariantCulture))} | {row.AErrors} |");
        }

        return text.ToString();
    }

    /// <summary>B's open loop: one request every 1/rate seconds whatever the answers, for the measured duration.</summary>
    private async Task<(double Rate, double P50, double P99, long Errors)> QuietAsync(
        HttpClient client, Uri url, BenchModel model, double perSecond, CancellationToken cancellationToken)
    {
        var interval = TimeSpan.FromSeconds(1 / perSecond);
        var sent = new List<Task<(double Ms, string? Error)>>();
        var clock = Stopwatch.StartNew();
        using var timer = new PeriodicTimer(interval);
        while (clock.Elapsed < duration && await timer.WaitForNextTickAsync(cancellationToken))
        {
            sent.Add(TimedAsync(client, url, model, cancellationToken));
        }

        var results = await Task.WhenAll(sent);
        var latencies = results.Where(r => r.Error is null).Select(r => r.Ms).Order().ToArray();
        return (latencies.Length / duration.TotalSeconds, LoadGenerator.Percentile(latencies, 0.50), LoadGenerator.Percentile(latencies, 0.99),
            results.Count(r => r.Error is not null));
    }

    private static async Task<(double Ms, string? Error)> TimedAsync(HttpClient client, Uri url, BenchModel model, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var error = await SendAsync(client, url, model, cancellationToken);
        return (Stopwatch.GetElapsedTime(started).TotalMilliseconds, error);
    }

    private static Task<string?> SendAsync(HttpClient client, Uri url, BenchModel model, CancellationToken cancellationToken) =>
        LoadGenerator.PostAsync(client, url, model.Payload, model.ContentType, cancellationToken);

    private static HttpClient Client(string key, int connections)
    {
        var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections }) { Timeout = TimeSpan.FromSeconds(120) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }
}
