using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Serve.Cluster.Tests;

/// <summary>
/// Two gateways and two workers, one cluster certificate, one registry journal (the gateways share a data
/// directory, as they would share a PostgreSQL database across hosts). The first gateway, the oldest node,
/// holds the registry singleton and sharding's coordinator; it is killed under load sent to the second.
/// </summary>
public sealed class GatewayFailoverTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    /// <summary>
    /// The aim is 10 s for the registry singleton to answer on the other gateway. Measured here: 8.0-9.2 s
    /// with this test alone, 10.7 s with the rest of the suite running beside it (heartbeats jitter under
    /// load, and the failure detector waits longer). The dead gateway is found unreachable after about 3 s,
    /// downed 3 s later (stable-after) and removed, with a 1 s margin, before the singleton starts on the
    /// next oldest gateway. Bounded at 12 s so that load alone does not fail the test.
    /// </summary>
    private static readonly TimeSpan RegistryWithin = TimeSpan.FromSeconds(12);

    /// <summary>
    /// A new replica also needs the shard coordinator (moved by the same downing) and a model load: 8.6-9.6 s
    /// measured alone, 11.6 s beside the suite.
    /// </summary>
    private static readonly TimeSpan NewReplicaWithin = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Killing_the_oldest_gateway_fails_no_request_to_the_other_and_the_registry_and_coordinator_move()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-failover-").FullName;
        var processes = new List<ServeProcess>();
        try
        {
            TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));
            var data = Path.Combine(store, "data");
            var keys = KeyFiles.Write(Path.Combine(data, "key_file.json"));
            var certificate = await ClusterCertificates.CreateAsync(Path.Combine(store, ".keys", "cluster.p12"));
            var ports = FreePorts.Take(14);
            var (first, second) = (Gateway(ports, 0, ports[10]), Gateway(ports, 5, ports[11]));
            var seeds = new Dictionary<string, string>
            {
                ["Serve__Cluster__Tls__Keystore"] = certificate,
                ["Serve__Cluster__Seeds__0"] = $"127.0.0.1:{first.ClusterPort}",
                ["Serve__Cluster__Seeds__1"] = $"127.0.0.1:{second.ClusterPort}",
            };

            ServeProcess Start(string name, string dll, IEnumerable<string> arguments, Dictionary<string, string>? extra = null)
            {
                var environment = new Dictionary<string, string>(seeds);
                foreach (var (key, value) in extra ?? [])
                {
                    environment[key] = value;
                }

                var process = ServeProcess.Start(name, ServeProcess.BuiltDll(dll, $"Serve.{dll}.dll"), environment, [.. arguments]);
                processes.Add(process);
                return process;
            }

            string[] GatewayArguments(GatewayPorts gateway) =>
            [
                "--inference-address", $"http://127.0.0.1:{gateway.Inference}", "--management-address", $"http://127.0.0.1:{gateway.Management}",
                "--metrics-address", $"http://127.0.0.1:{gateway.Metrics}", "--grpc-inference-address", $"http://127.0.0.1:{gateway.GrpcInference}",
                "--grpc-management-address", $"http://127.0.0.1:{gateway.GrpcManagement}", "--cluster-port", Port(gateway.ClusterPort),
                "--model-store", store, "--models", "tiny=tiny.pt?replicas=2", "--data-dir", data,
            ];

            var oldest = Start("gateway-1", "Gateway", GatewayArguments(first));
            using var firstInference = KeyFiles.Client(Uri(first.Inference), keys.Inference, TimeSpan.FromSeconds(5));
            await Waiting.UntilAsync(async () => (await firstInference.GetAsync("/ping", token)).IsSuccessStatusCode, StartTimeout,
                "the first gateway to answer /ping", () => oldest.Tail());
            var other = Start("gateway-2", "Gateway", GatewayArguments(second));
            for (var i = 1; i <= 2; i++)
            {
                Start($"worker-{i}", "Node", ["--cluster-port", Port(ports[11 + i]), "--model-store", store],
                    new Dictionary<string, string> { ["Serve__Node__Name"] = $"worker-{i}" });
            }

            string Diagnostics() => string.Join(Environment.NewLine, processes.Select(p => p.Tail()));
            using var inference = KeyFiles.Client(Uri(second.Inference), keys.Inference, TimeSpan.FromSeconds(30));
            // A short timeout: a call sent to the registry while it moves is lost, and the next one goes out sooner.
            using var management = KeyFiles.Client(Uri(second.Management), keys.Management, TimeSpan.FromSeconds(1));
            await Waiting.UntilAsync(async () => await ReadyReplicasAsync(management, token) == 2, StartTimeout,
                "both replicas READY, described through the second gateway", Diagnostics);

            // Clients of the second gateway before the fault too: it has found where both replicas live.
            for (var i = 0; i < 100; i++)
            {
                using var warm = await inference.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson, Encoding.UTF8, "application/json"), token);
                Assert.True(warm.IsSuccessStatusCode, $"{warm.StatusCode} before the fault\n{Diagnostics()}");
            }

            var clock = Stopwatch.StartNew();
            oldest.Kill();
            output.WriteLine($"killed gateway-1 (pid {oldest.Id}), the oldest node: registry singleton and shard coordinator");

            // Load on the second gateway throughout, while the scaling below waits for the registry (a singleton)
            // to answer again and for a third replica, a new shard the coordinator must allocate, to be READY.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(token);
            var failures = new List<string>();
            var sent = 0;
            var traffic = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    using var response = await inference.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson, Encoding.UTF8, "application/json"), token);
                    sent++;
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        failures.Add($"{clock.Elapsed.TotalSeconds:0.0}s {response.StatusCode}: {await response.Content.ReadAsStringAsync(token)}");
                    }
                }
            }, token);

            TimeSpan? registryAnswered = null;
            TimeSpan? newReplicaReady = null;
            while (clock.Elapsed < TimeSpan.FromSeconds(60) && newReplicaReady is null)
            {
                if (registryAnswered is null)
                {
                    try
                    {
                        using var scale = await management.PutAsync("/models/tiny?min_worker=3", null, token);
                        registryAnswered = scale.IsSuccessStatusCode ? clock.Elapsed : null;
                    }
                    catch (TaskCanceledException) when (!token.IsCancellationRequested)
                    {
                        // The registry is moving: the call outlived the client's 1 s.
                    }
                }
                else if (await ReadyReplicasAsync(management, token) == 3)
                {
                    newReplicaReady = clock.Elapsed;
                }
                else
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), token);
                }
            }

            await stop.CancelAsync();
            await traffic;
            output.WriteLine($"{sent} requests to gateway-2, {failures.Count} failed; the registry answered {registryAnswered?.TotalSeconds:0.0} s " +
                             $"and a new replica was READY {newReplicaReady?.TotalSeconds:0.0} s after the kill");
            Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)) + "\n" + Diagnostics());
            Assert.True(registryAnswered is { } answered && answered <= RegistryWithin,
                $"registry answered after {registryAnswered?.TotalSeconds:0.0} s (bound: {RegistryWithin.TotalSeconds:0} s)\n{Diagnostics()}");
            Assert.True(newReplicaReady is { } ready && ready <= NewReplicaWithin,
                $"new replica READY after {newReplicaReady?.TotalSeconds:0.0} s (bound: {NewReplicaWithin.TotalSeconds:0} s)\n{Diagnostics()}");
        }
        finally
        {
            foreach (var process in processes)
            {
                await process.DisposeAsync();
            }

            Directory.Delete(store, recursive: true);
        }
    }

    /// <summary>READY replicas of tiny that the registry describes; -1 while it does not answer (moving).</summary>
    private static async Task<int> ReadyReplicasAsync(HttpClient management, CancellationToken token)
    {
        try
        {
            using var response = await management.GetAsync("/models/tiny", token);
            if (!response.IsSuccessStatusCode)
            {
                return -1;
            }

            using var described = JsonDocument.Parse(await response.Content.ReadAsStringAsync(token));
            return described.RootElement[0].GetProperty("workers").EnumerateArray()
                .Count(w => w.GetProperty("status").GetString() == "READY" && !w.GetProperty("retiring").GetBoolean());
        }
        catch (TaskCanceledException) when (!token.IsCancellationRequested)
        {
            return -1;
        }
    }

    private sealed record GatewayPorts(int Inference, int Management, int Metrics, int GrpcInference, int GrpcManagement, int ClusterPort);

    private static GatewayPorts Gateway(int[] ports, int offset, int clusterPort) =>
        new(ports[offset], ports[offset + 1], ports[offset + 2], ports[offset + 3], ports[offset + 4], clusterPort);

    private static Uri Uri(int port) => new($"http://127.0.0.1:{port}");

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
