using System.Text.Json;

namespace Serve.Cluster.Tests;

/// <summary>
/// A model definition arrives at a worker over the cluster, so the worker checks its files as if they came
/// from outside: an absolute path outside its model store is opened only where the worker's own
/// configuration allows (Serve:Node:ModelDirectories), whatever the gateway or the registry sent.
/// </summary>
public sealed class ModelSourceTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_model_file_outside_the_store_loads_only_on_the_worker_that_allows_its_directory()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-sources-").FullName;
        var outside = Directory.CreateTempSubdirectory("serve-outside-").FullName;
        try
        {
            var model = Path.Combine(outside, "tiny.pt");
            TestModels.WriteLinRelu(model);
            // The operator's start-up configuration on the gateway may name any file; worker-2 alone allows its directory.
            await using var cluster = await LocalCluster.StartAsync(2, store,
                ["--models", $"outside={model}?replicas=2", "--data-dir", Path.Combine(store, "gateway-data")],
                workerEnvironment: i => i == 1 ? new Dictionary<string, string> { ["Serve__Node__ModelDirectories__0"] = outside } : []);
            using var management = cluster.ManagementClient(TimeSpan.FromSeconds(10));

            JsonElement[] workers = [];
            await Waiting.UntilAsync(async () =>
            {
                using var described = JsonDocument.Parse(await management.GetStringAsync("/models/outside", token));
                workers = [.. described.RootElement[0].GetProperty("workers").EnumerateArray().Select(w => w.Clone())];
                return workers.Any(w => w.GetProperty("status").GetString() == "READY" && w.GetProperty("nodeName").GetString() == "worker-2")
                       && workers.Any(w => w.GetProperty("nodeName").GetString() == "worker-1"
                                           && w.GetProperty("lastError").GetString()?.Contains("Serve:Node:ModelDirectories", StringComparison.Ordinal) == true);
            }, StartTimeout, "the replica on worker-2 READY and the one on worker-1 refused, naming Serve:Node:ModelDirectories", cluster.Diagnostics);

            Assert.DoesNotContain(workers, w => w.GetProperty("nodeName").GetString() == "worker-1" && w.GetProperty("status").GetString() == "READY");
            using var inference = cluster.InferenceClient(TimeSpan.FromSeconds(30));
            using var answer = await inference.PostAsync("/predictions/outside", new StringContent(TestModels.OnesJson), token);
            Assert.True(answer.IsSuccessStatusCode, $"{answer.StatusCode}\n{cluster.Diagnostics()}");
        }
        finally
        {
            Directory.Delete(store, recursive: true);
            Directory.Delete(outside, recursive: true);
        }
    }
}
