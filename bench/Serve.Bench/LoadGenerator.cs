using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;

namespace Serve.Bench;

/// <summary>Throughput and latency percentiles of one load run.</summary>
public sealed record LoadResult(int Concurrency, double Seconds, long Completed, long Errors, double Throughput, double P50Ms, double P90Ms, double P99Ms)
{
    public string? FirstError { get; init; }
}

/// <summary>
/// Closed-loop HTTP load: <c>concurrency</c> clients each send a request, wait for its answer and send the
/// next, for a warm-up period (not measured) and then a measured period. Only loopback addresses.
/// </summary>
public static class LoadGenerator
{
    public static async Task<LoadResult> RunAsync(
        Uri url, byte[] payload, string contentType, int concurrency, TimeSpan warmUp, TimeSpan duration, CancellationToken cancellationToken)
    {
        if (!IPAddress.TryParse(url.Host, out var ip) || !IPAddress.IsLoopback(ip))
        {
            throw new ArgumentException($"the load generator only sends to loopback addresses, not {url.Host}");
        }

        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(120) };
        var started = Stopwatch.GetTimestamp();
        var measureFrom = started + (long)(warmUp.TotalSeconds * Stopwatch.Frequency);
        var stopAt = measureFrom + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var latencies = new List<double>[concurrency];
        var errors = new long[concurrency];
        string? firstError = null;

        async Task Client(int index)
        {
            var mine = latencies[index] = new List<double>(4096);
            while (true)
            {
                var sent = Stopwatch.GetTimestamp();
                if (sent >= stopAt)
                {
                    return;
                }

                using var content = new ByteArrayContent(payload);
                content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
                var ok = false;
                try
                {
                    using var response = await client.PostAsync(url, content, cancellationToken);
                    await response.Content.CopyToAsync(Stream.Null, cancellationToken);
                    ok = response.IsSuccessStatusCode;
                    if (!ok)
                    {
                        Interlocked.CompareExchange(ref firstError, $"HTTP {(int)response.StatusCode}", null);
                    }
                }
                catch (HttpRequestException error)
                {
                    Interlocked.CompareExchange(ref firstError, error.Message, null);
                }

                var done = Stopwatch.GetTimestamp();
                if (sent >= measureFrom && done <= stopAt)
                {
                    if (ok)
                    {
                        mine.Add(Stopwatch.GetElapsedTime(sent, done).TotalMilliseconds);
                    }
                    else
                    {
                        errors[index]++;
                    }
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(i => Task.Run(() => Client(i), cancellationToken)));
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new LoadResult(concurrency, duration.TotalSeconds, all.Length, errors.Sum(),
            all.Length / duration.TotalSeconds, Percentile(all, 0.50), Percentile(all, 0.90), Percentile(all, 0.99))
        {
            FirstError = firstError,
        };
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
