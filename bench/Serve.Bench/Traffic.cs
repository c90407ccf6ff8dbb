using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;

namespace Serve.Bench;

/// <summary>One request: when it was sent and answered (seconds from the traffic's start), how, and by which replica.</summary>
public sealed record Sent(double Start, double End, bool Ok, bool Hung, string? Replica);

/// <summary>
/// Background load for the chaos and soak runs: <c>clients</c> loops, each sending one request and waiting
/// for its answer, optionally paced to a total rate; every request is recorded. A request still unanswered
/// at its deadline is cancelled and counted as hung. Loopback addresses only.
/// </summary>
public sealed class Traffic : IAsyncDisposable
{
    private readonly ConcurrentQueue<Sent> _sent = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly HttpClient _client;
    private readonly Task _running;
    private readonly Stopwatch _clock;
    private long _slot;

    public Traffic(Uri url, byte[] payload, string contentType, string key, int clients, TimeSpan deadline, Stopwatch clock, double ratePerSecond = 0)
    {
        LoadGenerator.RequireLoopback(url);
        _clock = clock;
        _client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients }) { Timeout = Timeout.InfiniteTimeSpan };
        _client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var startedAt = clock.Elapsed.TotalSeconds;

        async Task Client()
        {
            while (!_stop.IsCancellationRequested)
            {
                if (ratePerSecond > 0)
                {
                    // Paced: the n-th request overall is due at n / rate; a client behind schedule sends at once.
                    var due = startedAt + Interlocked.Increment(ref _slot) / ratePerSecond;
                    var wait = due - _clock.Elapsed.TotalSeconds;
                    if (wait > 0)
                    {
                        try
                        {
                            await Task.Delay(TimeSpan.FromSeconds(wait), _stop.Token);
                        }
                        catch (OperationCanceledException)
                        {
                            return;
                        }
                    }
                }

                await SendOneAsync(url, payload, contentType, deadline);
            }
        }

        _running = Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(Client)));
    }

    /// <summary>Everything recorded so far.</summary>
    public IReadOnlyList<Sent> Recorded => [.. _sent];

    /// <summary>Takes what was recorded since the last drain (a long run keeps only one interval in memory).</summary>
    public IReadOnlyList<Sent> Drain()
    {
        var taken = new List<Sent>();
        while (_sent.TryDequeue(out var sent))
        {
            taken.Add(sent);
        }

        return taken;
    }

    /// <summary>The requests sent from <paramref name="from"/> up to <paramref name="to"/> (seconds on the shared clock).</summary>
    public IReadOnlyList<Sent> Between(double from, double to) => [.. _sent.Where(s => s.Start >= from && s.Start < to)];

    private async Task SendOneAsync(Uri url, byte[] payload, string contentType, TimeSpan deadline)
    {
        var start = _clock.Elapsed.TotalSeconds;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(deadline);
        using var content = new ByteArrayContent(payload);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        bool ok;
        var hung = false;
        string? replica = null;
        try
        {
            using var response = await _client.PostAsync(url, content, timeout.Token);
            await response.Content.CopyToAsync(Stream.Null, timeout.Token);
            ok = response.IsSuccessStatusCode;
            replica = response.Headers.TryGetValues("x-serve-replica", out var values) ? values.FirstOrDefault() : null;
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            return; // stopped, not a result
        }
        catch (OperationCanceledException)
        {
            ok = false;
            hung = true;
        }
        catch (HttpRequestException)
        {
            ok = false;
        }

        _sent.Enqueue(new Sent(start, _clock.Elapsed.TotalSeconds, ok, hung, replica));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _running;
        _client.Dispose();
        _stop.Dispose();
    }
}
