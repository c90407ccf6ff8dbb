using System.Globalization;
using System.Text.Json;

namespace Serve.Bench;

/// <summary>
/// A real cluster for the chaos and soak runs: gateway and worker processes on loopback with free ports,
/// one cluster certificate, token authorization on, the gateways sharing one data directory (its SQLite
/// journal) and all listed as seeds. Any node can be stopped and started again in its place.
/// </summary>
public sealed class BenchCluster : IAsyncDisposable
{
    private readonly List<Node> _gateways = [];
    private readonly List<Node> _workers = [];
    private readonly string _store;

    private BenchCluster(string store, TestKeys keys)
    {
        _store = store;
        Keys = keys;
    }

    public TestKeys Keys { get; }

    public IReadOnlyList<Node> Gateways => _gateways;

    public IReadOnlyList<Node> Workers => _workers;

    public IEnumerable<Node> Nodes => _gateways.Concat(_workers);

    /// <summary>One node: its process now, and how to start it again with the same name, ports and settings.</summary>
    public sealed class Node(string name, Func<ServeProcess> start, int inferencePort = 0, int managementPort = 0)
    {
        public string Name { get; } = name;

        public ServeProcess Process { get; private set; } = start();

        public Uri Inference { get; } = new($"http://127.0.0.1:{inferencePort}");

        public Uri Management { get; } = new($"http://127.0.0.1:{managementPort}");

        /// <summary>Waits for the old process to be gone (it was killed or told to stop), then starts the node again.</summary>
        public async Task StartAgainAsync()
        {
            await Process.ExitCodeAsync(TimeSpan.FromSeconds(60));
            await Process.DisposeAsync();
            Process = start();
        }
    }

    /// <param name="models">The gateways' start-up models (TorchServe's --models), over a store <paramref name="prepareStore"/> fills.</param>
    /// <param name="gatewayEnvironment">More settings for the gateways (Serve__Models__N__... for built-in models).</param>
    public static async Task<BenchCluster> StartAsync(
        int gateways, int workers, string models, Action<string> prepareStore, IReadOnlyDictionary<string, string>? gatewayEnvironment = null)
    {
        var store = Directory.CreateTempSubdirectory("serve-bench-cluster-").FullName;
        prepareStore(store);
        var keyFile = Path.Combine(store, ".keys", "key_file.json");
        var cluster = new BenchCluster(store, KeyFiles.Write(keyFile));
        var ports = FreePorts.Take(gateways * 6 + workers);
        var environment = new Dictionary<string, string>
        {
            ["Serve__Security__KeyFile"] = keyFile,
            ["Serve__Cluster__Tls__Keystore"] = await ClusterCertificates.CreateAsync(Path.Combine(store, ".keys", "cluster.p12")),
            ["Serve__ModelStore"] = store,
            ["Logging__LogLevel__Default"] = "Warning",
        };
        for (var g = 0; g < gateways; g++)
        {
            environment[$"Serve__Cluster__Seeds__{g}"] = $"127.0.0.1:{ports[g * 6 + 5]}";
        }

        var gatewayOnly = new Dictionary<string, string>(environment);
        foreach (var (key, value) in gatewayEnvironment ?? new Dictionary<string, string>())
        {
            gatewayOnly[key] = value;
        }

        var gatewayDll = ServeProcess.BuiltDll("Gateway", "Serve.Gateway.dll");
        for (var g = 0; g < gateways; g++)
        {
            var p = ports.Skip(g * 6).Take(6).ToArray();
            string[] arguments =
            [
                "--inference-address", Url(p[0]), "--management-address", Url(p[1]), "--metrics-address", Url(p[2]),
                "--grpc-inference-address", Url(p[3]), "--grpc-management-address", Url(p[4]), "--cluster-port", Port(p[5]),
                "--models", models, "--data-dir", Path.Combine(store, "gateway-data"),
            ];
            var name = $"gateway-{g + 1}";
            cluster._gateways.Add(new Node(name, () => ServeProcess.Start(name, gatewayDll, gatewayOnly, arguments), p[0], p[1]));
            if (g == 0)
            {
                // The first gateway founds the cluster; the others join it.
                using var ping = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
                await Waiting.UntilAsync(async () => (await ping.GetAsync(new Uri($"{Url(p[0])}/ping"))).IsSuccessStatusCode,
                    TimeSpan.FromSeconds(120), "the first gateway to answer /ping", () => cluster._gateways[0].Process.Tail());
            }
        }

        var workerDll = ServeProcess.BuiltDll("Node", "Serve.Node.dll");
        for (var w = 0; w < workers; w++)
        {
            var name = $"worker-{w + 1}";
            var port = ports[gateways * 6 + w];
            var own = new Dictionary<string, string>(environment) { ["Serve__Node__Name"] = name };
            cluster._workers.Add(new Node(name, () => ServeProcess.Start(name, workerDll, own, "--cluster-port", Port(port))));
        }

        return cluster;
    }

    /// <summary>A client of a gateway's management API (describe), presenting the management key.</summary>
    public HttpClient ManagementClient(Node gateway, TimeSpan timeout) => KeyFiles.Client(gateway.Management, Keys.Management, timeout);

    /// <summary>
    /// The READY, non-retiring replicas of <paramref name="model"/> as describe shows them (replica id to
    /// node name); null while the registry does not answer.
    /// </summary>
    public static async Task<Dictionary<string, string>?> ReadyReplicasAsync(HttpClient management, string model)
    {
        try
        {
            using var response = await management.GetAsync($"/models/{model}");
            if (!response.IsSuccessStatusCode)
            {
                return null;
            }

            using var described = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return described.RootElement[0].GetProperty("workers").EnumerateArray()
                .Where(w => w.GetProperty("status").GetString() == "READY" && !w.GetProperty("retiring").GetBoolean())
                .ToDictionary(w => w.GetProperty("id").GetString()!, w => w.GetProperty("nodeName").GetString()!);
        }
        catch (Exception error) when (error is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    public string Diagnostics() => string.Join(Environment.NewLine, Nodes.Select(n => n.Process.Tail()));

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            await node.Process.DisposeAsync();
        }

        Directory.Delete(_store, recursive: true);
    }

    private static string Url(int port) => $"http://127.0.0.1:{port}";

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
