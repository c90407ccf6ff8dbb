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
/// Closed-loop load: <c>concurrency</c> clients each send a request, wait for its answer and send the
/// next, for a warm-up period (not measured) and then a measured period. Only loopback addresses.
/// </summary>
public static class LoadGenerator
{
    /// <summary>One POST of <paramref name="payload"/>, read to the end: null when answered 2xx, else what went wrong.</summary>
    public static async Task<string?> PostAsync(HttpClient client, Uri url, byte[] payload, string contentType, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(payload);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        try
        {
            using var response = await client.PostAsync(url, content, cancellationToken);
            await response.Content.CopyToAsync(Stream.Null, cancellationToken);
            return response.IsSuccessStatusCode ? null : $"HTTP {(int)response.StatusCode}";
        }
        catch (HttpRequestException error)
        {
            return error.Message;
        }
    }

    /// <summary>HTTP POSTs of <paramref name="payload"/>, with <paramref name="key"/> as the bearer token when given; a non-2xx answer is an error.</summary>
    public static async Task<LoadResult> RunAsync(
        Uri url, byte[] payload, string contentType, string? key, int concurrency, TimeSpan warmUp, TimeSpan duration, CancellationToken cancellationToken)
    {
        RequireLoopback(url);
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(120) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return await ClosedLoopAsync(token => PostAsync(client, url, payload, contentType, token), concurrency, warmUp, duration, cancellationToken);
    }

    public static void RequireLoopback(Uri url)
    {
        if (!IPAddress.TryParse(url.Host, out var ip) || !IPAddress.IsLoopback(ip))
        {
            throw new ArgumentException($"the load generator only sends to loopback addresses, not {url.Host}");
        }
    }

    /// <summary>
    /// The loop every protocol shares, so that HTTP and gRPC figures are measured the same way.
    /// <paramref name="send"/> makes one request and answers null on success, else what went wrong.
    /// </summary>
    public static async Task<LoadResult> ClosedLoopAsync(
        Func<CancellationToken, Task<string?>> send, int concurrency, TimeSpan warmUp, TimeSpan duration, CancellationToken cancellationToken)
    {
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

                var error = await send(cancellationToken);
                if (error is not null)
                {
                    Interlocked.CompareExchange(ref firstError, error, null);
                }

                var done = Stopwatch.GetTimestamp();
                if (sent >= measureFrom && done <= stopAt)
                {
                    if (error is null)
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

    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
