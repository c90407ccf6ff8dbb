using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Serve.Bench;

/// <summary>What one fault cost the clients.</summary>
/// <param name="FirstSuccessMs">From the fault to the first success of a request sent after it.</param>
/// <param name="LongestGapMs">The longest time between two successive answers within the window.</param>
/// <param name="CapacityBackSeconds">From the fault until requests are answered by two replicas again, none
/// on the faulted node (from the answers' x-serve-replica, and describe for the node).</param>
/// <param name="RegistrySeconds">From the fault until the registry answered describe again (NaN: it never stopped).</param>
public sealed record FaultResult(
    string Fault, int Sent, int Failed, int Hung, double FirstSuccessMs, double LongestGapMs, double CapacityBackSeconds, double RegistrySeconds);

/// <summary>
/// The chaos run: two gateways, three workers, a model with two replicas, clients on the second gateway
/// throughout; one fault at a time (a worker frozen for 3 s, stopped with SIGTERM, killed with SIGKILL, then
/// the oldest gateway killed), each node started again afterwards, the cluster settled before the next.
/// </summary>
public sealed class Chaos(TextWriter log)
{
    private const string Model = "tiny";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan CapacityWithin = TimeSpan.FromSeconds(45);

    public async Task<IReadOnlyList<FaultResult>> RunAsync(int clients, CancellationToken cancellationToken)
    {
        await using var cluster = await BenchCluster.StartAsync(2, 3, $"{Model}=tiny.pt?replicas=2&batch_size=8&max_batch_delay=0",
            store => TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt")));
        var surviving = cluster.Gateways[1];
        using var management = cluster.ManagementClient(surviving, TimeSpan.FromSeconds(1));
        await SettledAsync(cluster, management, "the cluster to start");
        var clock = Stopwatch.StartNew();
        await using var traffic = new Traffic(new Uri(surviving.Inference, $"/predictions/{Model}"), Encoding.UTF8.GetBytes(TestModels.OnesJson),
            "application/json", cluster.Keys.Inference, clients, Deadline, clock);
        await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken); // warm: both replicas answered

        var results = new List<FaultResult>();
        async Task<BenchCluster.Node> HolderAsync()
        {
            var ready = await BenchCluster.ReadyReplicasAsync(management, Model) ?? [];
            return cluster.Workers.First(w => ready.ContainsValue(w.Name));
        }

        var paused = await HolderAsync();
        results.Add(await FaultAsync(cluster, management, traffic, clock, "worker frozen 3 s (SIGSTOP, SIGCONT)", paused.Name, async () =>
        {
            paused.Process.Pause();
            await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken); // the fault itself
            paused.Process.Resume();
        }, excludeFaulted: false));

        var stopped = await HolderAsync();
        results.Add(await FaultAsync(cluster, management, traffic, clock, "worker stopped (SIGTERM)", stopped.Name,
            () => { stopped.Process.Terminate(); return Task.CompletedTask; }));
        await stopped.StartAgainAsync();
        await SettledAsync(cluster, management, $"{stopped.Name} to rejoin");

        var killed = await HolderAsync();
        results.Add(await FaultAsync(cluster, management, traffic, clock, "worker killed (SIGKILL)", killed.Name,
            () => { killed.Process.Kill(); return Task.CompletedTask; }));
        await killed.StartAgainAsync();
        await SettledAsync(cluster, management, $"{killed.Name} to rejoin");

        var oldest = cluster.Gateways[0];
        results.Add(await FaultAsync(cluster, management, traffic, clock, "oldest gateway killed (SIGKILL; registry, coordinator)", oldest.Name,
            () => { oldest.Process.Kill(); return Task.CompletedTask; }, excludeFaulted: false));
        return results;
    }

    /// <summary>Injects one fault and measures the requests from it until capacity is back, plus 3 s.</summary>
    private async Task<FaultResult> FaultAsync(BenchCluster cluster, HttpClient management, Traffic traffic, Stopwatch clock,
        string fault, string faultedNode, Func<Task> inject, bool excludeFaulted = true)
    {
        log.WriteLine($"-- {fault} ({faultedNode})");
        var at = clock.Elapsed.TotalSeconds;
        var registryBack = double.NaN;
        var injecting = inject();
        var describedBack = double.NaN;
        while (clock.Elapsed.TotalSeconds - at < CapacityWithin.TotalSeconds)
        {
            // Describe reads the gateway's catalog; a scale to the same count needs the registry singleton itself.
            var registryAnswers = await RegistryAnswersAsync(management);
            var ready = await BenchCluster.ReadyReplicasAsync(management, Model);
            var now = clock.Elapsed.TotalSeconds;
            if (!registryAnswers)
            {
                registryBack = double.PositiveInfinity; // it stopped answering: timed when it answers again
            }
            else if (double.IsPositiveInfinity(registryBack))
            {
                registryBack = now - at;
            }

            if (injecting.IsCompleted && registryAnswers && ready is not null && ready.Count(r => !excludeFaulted || r.Value != faultedNode) >= 2
                && now - at > 1)
            {
                describedBack = now - at;
                break;
            }

            await Task.Delay(200);
        }

        await injecting;
        await Task.Delay(TimeSpan.FromSeconds(3));
        var end = clock.Elapsed.TotalSeconds;
        var window = traffic.Recorded.Where(s => s.Start >= at && s.Start < end).OrderBy(s => s.End).ToList();
        var successes = window.Where(s => s.Ok).Select(s => s.End).ToList();
        var gaps = successes.Zip(successes.Skip(1), (a, b) => b - a).DefaultIfEmpty(0).Max();
        var firstSuccess = successes.Count > 0 ? (successes[0] - at) * 1000 : double.NaN;
        var result = new FaultResult(fault, window.Count, window.Count(s => !s.Ok), window.Count(s => s.Hung), firstSuccess, gaps * 1000,
            CapacityBack(window, at, excludeFaulted ? describedBack : 0, double.IsNaN(describedBack)), registryBack);
        log.WriteLine($"   {result}");
        foreach (var second in window.Where(s => s.Ok).GroupBy(s => (int)(s.End - at)).OrderBy(g => g.Key))
        {
            log.WriteLine($"   +{second.Key,2} s: {string.Join("  ", second.GroupBy(s => s.Replica).OrderBy(g => g.Key).Select(g => $"{g.Key} x{g.Count()}"))}");
        }

        return result;
    }

    /// <summary>
    /// The later of: the end of the last quarter second after the fault in which fewer than two replicas
    /// answered, and <paramref name="describedBack"/> (for a worker lost: when describe showed two replicas
    /// READY off it). NaN when capacity was not back within the window.
    /// </summary>
    private static double CapacityBack(IReadOnlyList<Sent> window, double at, double describedBack, bool neverBack)
    {
        const double Bucket = 0.25;
        var lastShort = window.Where(s => s.Ok).GroupBy(s => (int)((s.End - at) / Bucket))
            .Where(g => g.Select(s => s.Replica).Distinct().Count() < 2).Select(g => (g.Key + 1) * Bucket).DefaultIfEmpty(0).Max();
        return neverBack ? double.NaN : Math.Max(lastShort, describedBack);
    }

    private static async Task<bool> RegistryAnswersAsync(HttpClient management)
    {
        try
        {
            using var response = await management.PutAsync($"/models/{Model}?min_worker=2", null);
            return response.IsSuccessStatusCode;
        }
        catch (Exception error) when (error is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// Every worker joined and reported to the registry (GET /cluster), and two replicas READY on two workers,
    /// seen through the surviving gateway: a worker that rejoins during the next fault would hold placement
    /// back while the registry waits for its report.
    /// </summary>
    private static Task SettledAsync(BenchCluster cluster, HttpClient management, string what) =>
        Waiting.UntilAsync(async () =>
        {
            try
            {
                using var members = System.Text.Json.JsonDocument.Parse(await management.GetStringAsync("/cluster"));
                var reported = members.RootElement.GetProperty("members").EnumerateArray()
                    .Count(m => m.GetProperty("devices").GetArrayLength() > 0 && m.GetProperty("status").GetString() == "Up");
                return reported == cluster.Workers.Count
                       && await BenchCluster.ReadyReplicasAsync(management, Model) is { Count: 2 } ready && ready.Values.Distinct().Count() == 2;
            }
            catch (Exception error) when (error is HttpRequestException or TaskCanceledException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(120), what, cluster.Diagnostics);

    public static string Table(IReadOnlyList<FaultResult> results)
    {
        static string F(double value, string format) => double.IsNaN(value) ? "-" : value.ToString(format, CultureInfo.InvariantCulture);
        var table = new StringBuilder()
            .AppendLine("| fault | sent | failed | hung | first success after (ms) | longest gap between successes (ms) | capacity back (s) | registry answered (s) |")
            .AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
        {
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Fault} | {r.Sent} | {r.Failed} | {r.Hung} | {F(r.FirstSuccessMs, "0")} | {F(r.LongestGapMs, "0")} | {F(r.CapacityBackSeconds, "0.0")} | {F(r.RegistrySeconds, "0.0")} |");
        }

        return table.ToString();
    }
}
