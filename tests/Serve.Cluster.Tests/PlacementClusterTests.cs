using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Serve.Cluster.Tests;

/// <summary>
/// Placement across processes: a gateway and two workers (named worker-1 and worker-2), a model pinned to
/// one worker at start-up, then moved to the other under steady traffic.
/// </summary>
public sealed class PlacementClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private static async Task<JsonElement[]> WorkersAsync(HttpClient management, CancellationToken token) =>
        [.. JsonDocument.Parse(await management.GetStringAsync("/models/tiny", token)).RootElement[0].GetProperty("workers").EnumerateArray()];

    [Fact]
    public async Task A_model_pinned_to_one_worker_moves_to_the_other_without_failing_a_request()
    {
        var token = TestContext.Current.CancellationToken;
        await using var cluster = await LocalCluster.StartAsync(workers: 2, "tiny=tiny.pt?replicas=2&nodes=worker-1",
            store => TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt")));
        using var inference = cluster.InferenceClient(Timeout);
        using var management = cluster.ManagementClient(Timeout);

        await Waiting.UntilAsync(async () => (await WorkersAsync(management, token)) is { Length: 2 } workers
                                            && workers.All(w => w.GetProperty("status").GetString() == "READY"),
            Timeout, "both replicas to serve", cluster.Diagnostics);
        Assert.All(await WorkersAsync(management, token), w => Assert.Equal("worker-1", w.GetProperty("nodeName").GetString()));
        // worker-2 serves nothing yet, so nothing above waited for it.
        await cluster.WaitForWorkersAsync(management, Timeout, token);

        // Steady traffic from one client while the placement changes; bounded in time and count.
        var failures = new List<string>();
        var served = 0;
        using var moved = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        var traffic = Task.Run(async () =>
        {
            while (!moved.IsCancellationRequested && clock.Elapsed < Timeout && served < 20_000)
            {
                using var response = await inference.PostAsync("/predictions/tiny",
                    new StringContent(TestModels.OnesJson, Encoding.UTF8, "application/json"), CancellationToken.None);
                served++;
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    failures.Add($"{clock.Elapsed.TotalSeconds:0.00}s {response.StatusCode}: {await response.Content.ReadAsStringAsync(CancellationToken.None)}");
                }
            }
        }, CancellationToken.None);

        using var place = await management.PutAsync("/models/tiny/1.0/placement?nodes=worker-2&synchronous=true", null, token);
        var answer = await place.Content.ReadAsStringAsync(token);
        await Waiting.UntilAsync(async () => (await WorkersAsync(management, token)).Length == 2, Timeout,
            "the replaced replicas to stop", cluster.Diagnostics);
        await moved.CancelAsync();
        await traffic;
        output.WriteLine($"{served} requests in {clock.Elapsed.TotalSeconds:0.0} s while the model moved; {answer}");

        Assert.True(place.StatusCode == HttpStatusCode.OK, $"{place.StatusCode}: {answer}\n{cluster.Diagnostics()}");
        Assert.True(failures.Count == 0, $"{failures.Count} of {served} requests failed:\n{string.Join("\n", failures.Take(10))}\n{cluster.Diagnostics()}");
        var workers = await WorkersAsync(management, token);
        Assert.All(workers, w => Assert.Equal(("worker-2", "READY", false),
            (w.GetProperty("nodeName").GetString(), w.GetProperty("status").GetString(), w.GetProperty("retiring").GetBoolean())));

        // The cluster view agrees: worker-2 holds both replicas, worker-1 none.
        var members = JsonDocument.Parse(await management.GetStringAsync("/cluster", token)).RootElement.GetProperty("members").EnumerateArray()
            .Where(m => m.GetProperty("name").ValueKind == JsonValueKind.String)
            .ToDictionary(m => m.GetProperty("name").GetString()!, m => m.GetProperty("devices").EnumerateArray()
                .Sum(d => d.GetProperty("replicas").GetArrayLength()));
        Assert.Equal(new Dictionary<string, int> { ["worker-1"] = 0, ["worker-2"] = 2 }, members);
    }
}
