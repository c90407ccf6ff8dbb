using System.Net;
using System.Text;
using System.Text.Json;
using Npgsql;

namespace Serve.Cluster.Tests;

/// <summary>
/// A whole cluster (gateway and two workers) is stopped and started again over the same data: the models,
/// versions, default version and replica counts registered through the management API come back and
/// serve, with no further call to the management API. With SQLite (the default) and with PostgreSQL.
/// </summary>
public sealed class DurableRegistryTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task The_cluster_comes_back_to_its_registered_models_from_sqlite()
    {
        var store = Directory.CreateTempSubdirectory("serve-durable-").FullName;
        try
        {
            await RestartRoundTripAsync(store, ["--data-dir", Path.Combine(store, "data")]);
            Assert.True(File.Exists(Path.Combine(store, "data", "registry.db")), "the SQLite journal is in the data directory");
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    [Fact]
    public async Task The_cluster_comes_back_to_its_registered_models_from_postgresql()
    {
        var server = Environment.GetEnvironmentVariable("SERVE_TEST_POSTGRES");
        if (string.IsNullOrEmpty(server))
        {
            Assert.Skip("SERVE_TEST_POSTGRES is not set: run scripts/postgres-for-tests.sh (.ci/run does) and export what it prints");
        }

        var database = "serve_" + Guid.NewGuid().ToString("N");
        await using (var admin = new NpgsqlConnection(server))
        {
            await admin.OpenAsync(TestContext.Current.CancellationToken);
            await using var create = new NpgsqlCommand($"CREATE DATABASE {database}", admin);
            await create.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        var connection = new NpgsqlConnectionStringBuilder(server) { Database = database }.ConnectionString;
        var store = Directory.CreateTempSubdirectory("serve-durable-").FullName;
        try
        {
            await RestartRoundTripAsync(store,
            [
                "--data-dir", Path.Combine(store, "data"),
                "--Serve:Registry:Journal", "postgresql",
                "--Serve:Registry:ConnectionString", connection,
            ]);
            Assert.False(File.Exists(Path.Combine(store, "data", "registry.db")), "PostgreSQL was used, not SQLite");
        }
        finally
        {
            Directory.Delete(store, recursive: true);
            NpgsqlConnection.ClearAllPools();
            await using var admin = new NpgsqlConnection(server);
            await admin.OpenAsync(CancellationToken.None);
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {database} WITH (FORCE)", admin);
            await drop.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    private async Task RestartRoundTripAsync(string store, string[] registryArguments)
    {
        var token = TestContext.Current.CancellationToken;
        TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));
        TorchScriptWriter.Identity(Path.Combine(store, "echo.pt"));
        string[] gatewayArguments = ["--Serve:EnableModelApi", "true", .. registryArguments];

        await using (var first = await LocalCluster.StartAsync(workers: 2, store, gatewayArguments))
        {
            using var management = first.ManagementClient(Timeout);
            await Waiting.UntilAsync(async () => (await management.GetAsync("/models", token)).IsSuccessStatusCode,
                Timeout, "the first cluster's management API", first.Diagnostics);
            await Expect(management, HttpMethod.Post, "/models?url=tiny.pt&model_name=tiny&initial_workers=2", HttpStatusCode.OK, first);
            await Expect(management, HttpMethod.Post, "/models?url=echo.pt&model_name=tiny&model_version=2.0&initial_workers=1", HttpStatusCode.OK, first);
            await Expect(management, HttpMethod.Put, "/models/tiny/2.0/set-default", HttpStatusCode.OK, first);
            await Expect(management, HttpMethod.Put, "/models/tiny/2.0?min_worker=3&synchronous=true", HttpStatusCode.OK, first);
            await first.WaitForWorkersAsync(management, Timeout, token);
            await Expect(management, HttpMethod.Put, "/models/tiny/1.0/placement?nodes=worker-2&synchronous=true", HttpStatusCode.OK, first);
            output.WriteLine("registered tiny 1.0 (2 replicas, pinned to worker-2) and 2.0 (default, scaled to 3); stopping every process");
        }

        await using var second = await LocalCluster.StartAsync(workers: 2, store, gatewayArguments);
        using var inference = second.InferenceClient(Timeout);
        await Waiting.UntilAsync(async () => (await inference.GetAsync("/v2/models/tiny/versions/1.0/ready", token)).IsSuccessStatusCode
                                            && (await inference.GetAsync("/v2/models/tiny/versions/2.0/ready", token)).IsSuccessStatusCode,
            Timeout, "both versions to serve again after the restart", second.Diagnostics);

        var metadata = JsonDocument.Parse(await inference.GetStringAsync("/v2/models/tiny", token)).RootElement;
        Assert.Equal(["1.0", "2.0"], metadata.GetProperty("versions").EnumerateArray().Select(v => v.GetString()).Order());

        // Each version's replica count and pins are what was set before the restart, and all those replicas
        // serve where the pins say.
        using var restartedManagement = second.ManagementClient(Timeout);
        await Waiting.UntilAsync(async () =>
        {
            var described = JsonDocument.Parse(await restartedManagement.GetStringAsync("/models/tiny/all", token)).RootElement.EnumerateArray()
                .ToDictionary(v => v.GetProperty("modelVersion").GetString()!, v => v.GetProperty("workers").EnumerateArray()
                    .Count(w => w.GetProperty("status").GetString() == "READY" && !w.GetProperty("retiring").GetBoolean()));
            return described.GetValueOrDefault("1.0") == 2 && described.GetValueOrDefault("2.0") == 3;
        }, Timeout, "2 replicas of 1.0 and 3 of 2.0 to serve", second.Diagnostics);
        var pinned = JsonDocument.Parse(await restartedManagement.GetStringAsync("/models/tiny/1.0", token)).RootElement[0];
        Assert.Equal(["worker-2"], pinned.GetProperty("placement").GetProperty("nodes").EnumerateArray().Select(n => n.GetString()));
        Assert.All(pinned.GetProperty("workers").EnumerateArray(), w => Assert.Equal("worker-2", w.GetProperty("nodeName").GetString()));

        // Requests without a version go to the default (2.0, the identity model); both versions answer from
        // more than one replica.
        var replicas = new Dictionary<string, HashSet<string>>();
        await Waiting.UntilAsync(async () =>
        {
            foreach (var path in new[] { "/predictions/tiny", "/predictions/tiny/1.0" })
            {
                using var response = await inference.PostAsync(path, new StringContent(TestModels.OnesJson, Encoding.UTF8, "application/json"), token);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var replica = response.Headers.GetValues("x-serve-replica").Single();
                var version = replica.Split('/')[1];
                Assert.Equal(path.EndsWith("1.0", StringComparison.Ordinal) ? "1.0" : "2.0", version);
                (replicas.TryGetValue(version, out var seen) ? seen : replicas[version] = []).Add(replica);
            }

            return replicas.GetValueOrDefault("1.0")?.Count >= 2 && replicas.GetValueOrDefault("2.0")?.Count >= 3;
        }, Timeout, "every replica of both versions to serve", () => string.Join("; ", replicas.Select(r => $"{r.Key}: {string.Join(",", r.Value)}")));
    }

    private static async Task Expect(HttpClient client, HttpMethod method, string path, HttpStatusCode expected, LocalCluster cluster)
    {
        using var response = await client.SendAsync(new HttpRequestMessage(method, path), TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == expected, $"{method} {path}: {response.StatusCode} {body}\n{cluster.Diagnostics()}");
    }
}
