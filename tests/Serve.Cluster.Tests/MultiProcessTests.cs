using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Serve.Cluster.Tests;

/// <summary>
/// A real cluster: a gateway process and two worker processes on loopback, each a separate OS process
/// running the built src projects, with a TorchScript model the test writes itself.
/// </summary>
public sealed partial class MultiProcessTests(ITestOutputHelper output)
{
    private const string Models = "tiny=tiny.pt?replicas=2";
    private const string Ones = TestModels.OnesJson;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    private static void WriteTinyModel(string store) => TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));

    private static async Task<(HttpStatusCode Status, string? Replica, string Body)> PredictAsync(HttpClient client, CancellationToken token)
    {
        using var response = await client.PostAsync("/predictions/tiny", new StringContent(Ones, Encoding.UTF8, "application/json"), token);
        var body = await response.Content.ReadAsStringAsync(token);
        var replica = response.Headers.TryGetValues("x-serve-replica", out var values) ? values.Single() : null;
        return (response.StatusCode, replica, body);
    }

    /// <summary>
    /// Which worker holds each replica now, from the workers' own "ready" log lines: the latest by its
    /// timestamp wins, since a replica moved by rebalancing logs "ready" again on its new node.
    /// </summary>
    private static Dictionary<int, string> Placement(LocalCluster cluster) =>
        cluster.Workers
            .SelectMany(w => w.Lines.Select(line => (Worker: w.Name, Match: ReadyLine().Match(line))))
            .Where(x => x.Match.Success)
            .Select(x => (
                Replica: int.Parse(x.Match.Groups["replica"].Value),
                x.Worker,
                Time: DateTime.ParseExact(x.Match.Groups["time"].Value, "MM/dd/yyyy HH:mm:ss.fffK", System.Globalization.CultureInfo.InvariantCulture)))
            .GroupBy(x => x.Replica)
            .ToDictionary(g => g.Key, g => g.MaxBy(x => x.Time).Worker);

    private static async Task StartedAndSpreadAsync(LocalCluster cluster, HttpClient client, CancellationToken token)
    {
        await Waiting.UntilAsync(async () => (await client.GetAsync("/v2/models/tiny/ready", token)).IsSuccessStatusCode,
            StartTimeout, "the two-replica model to be ready through the gateway", cluster.Diagnostics);
        await Waiting.UntilAsync(() => Placement(cluster) is { Count: 2 } placed
                                       && placed.TryGetValue(0, out var first) && placed.TryGetValue(1, out var second) && first != second,
            StartTimeout, "one replica on each worker", cluster.Diagnostics);
    }

    [Fact]
    public async Task Each_worker_process_serves_one_replica_of_a_two_replica_model()
    {
        var token = TestContext.Current.CancellationToken;
        await using var cluster = LocalCluster.Start(workers: 2, Models, WriteTinyModel);
        using var client = new HttpClient { BaseAddress = cluster.InferenceAddress, Timeout = TimeSpan.FromSeconds(30) };
        await StartedAndSpreadAsync(cluster, client, token);

        var placement = Placement(cluster);
        output.WriteLine($"replica 0 on {placement[0]}, replica 1 on {placement[1]}");
        var servedBy = new HashSet<string>();
        for (var i = 0; i < 200 && servedBy.Count < 2; i++)
        {
            var (status, replica, body) = await PredictAsync(client, token);
            Assert.True(status == HttpStatusCode.OK, $"{status}: {body}\n{cluster.Diagnostics()}");
            Assert.Equal(TestModels.LinReluOfOnes, JsonDocument.Parse(body).RootElement[0].EnumerateArray().Select(v => v.GetSingle()));
            servedBy.Add(placement[int.Parse(replica!.Split('/')[2])]);
        }

        Assert.Equal(["worker-1", "worker-2"], servedBy.Order());
    }

    [Fact]
    public async Task Requests_keep_succeeding_when_a_worker_is_killed_and_its_replica_comes_back_on_the_survivor()
    {
        var token = TestContext.Current.CancellationToken;
        await using var cluster = LocalCluster.Start(workers: 2, Models, WriteTinyModel);
        using var client = new HttpClient { BaseAddress = cluster.InferenceAddress, Timeout = TimeSpan.FromSeconds(60) };
        await StartedAndSpreadAsync(cluster, client, token);

        var victim = cluster.Workers.Single(w => w.Name == Placement(cluster)[1]);
        var survivor = cluster.Workers.Single(w => w != victim);
        var readyBefore = survivor.Lines.Count(l => l.Contains("Replica tiny/1.0/1: ready on", StringComparison.Ordinal));
        victim.Kill();
        output.WriteLine($"killed {victim.Name} (pid {victim.Id}), which held replica 1");

        var failures = new List<string>();
        var served = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(90))
        {
            var (status, _, body) = await PredictAsync(client, token);
            served++;
            if (status != HttpStatusCode.OK)
            {
                failures.Add($"{clock.Elapsed.TotalSeconds:0.0}s {status}: {body}");
            }

            var back = survivor.Lines.Count(l => l.Contains("Replica tiny/1.0/1: ready on", StringComparison.Ordinal)) > readyBefore;
            if (back)
            {
                break;
            }
        }

        output.WriteLine($"{served} requests in {clock.Elapsed.TotalSeconds:0.0} s until replica 1 was ready again on {survivor.Name}");
        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n" + cluster.Diagnostics());
        Assert.True(survivor.Lines.Count(l => l.Contains("Replica tiny/1.0/1: ready on", StringComparison.Ordinal)) > readyBefore,
            "replica 1 did not come back on the surviving worker\n" + cluster.Diagnostics());

        var replicas = new HashSet<string>();
        for (var i = 0; i < 100 && replicas.Count < 2; i++)
        {
            var (status, replica, body) = await PredictAsync(client, token);
            Assert.True(status == HttpStatusCode.OK, $"{status}: {body}");
            replicas.Add(replica!);
        }

        Assert.Equal(["tiny/1.0/0", "tiny/1.0/1"], replicas.Order());
    }

    [Fact]
    public async Task A_worker_stopped_with_sigterm_hands_its_replica_off_without_failing_a_request()
    {
        var token = TestContext.Current.CancellationToken;
        await using var cluster = LocalCluster.Start(workers: 2, Models, WriteTinyModel);
        using var client = new HttpClient { BaseAddress = cluster.InferenceAddress, Timeout = TimeSpan.FromSeconds(60) };
        await StartedAndSpreadAsync(cluster, client, token);

        var leaving = cluster.Workers.Single(w => w.Name == Placement(cluster)[1]);
        var staying = cluster.Workers.Single(w => w != leaving);
        var readyBefore = staying.Lines.Count(l => l.Contains("Replica tiny/1.0/1: ready on", StringComparison.Ordinal));
        leaving.Terminate();
        output.WriteLine($"sent SIGTERM to {leaving.Name} (pid {leaving.Id}), which held replica 1");

        var failures = new List<string>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(90)
               && staying.Lines.Count(l => l.Contains("Replica tiny/1.0/1: ready on", StringComparison.Ordinal)) == readyBefore)
        {
            var (status, _, body) = await PredictAsync(client, token);
            if (status != HttpStatusCode.OK)
            {
                failures.Add($"{clock.Elapsed.TotalSeconds:0.0}s {status}: {body}");
            }
        }

        output.WriteLine($"replica 1 ready on {staying.Name} after {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n" + cluster.Diagnostics());
        await Waiting.UntilAsync(() => leaving.HasExited, TimeSpan.FromSeconds(30), $"{leaving.Name} to exit after SIGTERM", cluster.Diagnostics);
        Assert.True(staying.Lines.Count(l => l.Contains("Replica tiny/1.0/1: ready on", StringComparison.Ordinal)) > readyBefore,
            "replica 1 did not come back on the remaining worker\n" + cluster.Diagnostics());
    }

    [GeneratedRegex(@"\[(?<time>\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\.\d{3}Z)\].*Replica tiny/1\.0/(?<replica>\d): ready on")]
    private static partial Regex ReadyLine();
}
