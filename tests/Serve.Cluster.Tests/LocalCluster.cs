using System.Globalization;

namespace Serve.Cluster.Tests;

/// <summary>
/// A gateway process and N worker processes on loopback, with free ports, over a model store the caller
/// owns (so a test can stop a whole cluster and start another over the same store and data). The nodes share
/// one cluster certificate, made with the documented command and kept with the store: cluster TLS is on, as
/// by default.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<ServeProcess> _processes = [];

    // How each worker was started, to start it again in its place (same name, port and settings).
    private readonly List<Func<ServeProcess>> _workerStarts = [];
    private Func<ServeProcess> _gatewayStart = null!;
    private readonly string? _ownedStore;

    private LocalCluster(int inferencePort, int managementPort, int grpcInferencePort, int clusterPort, TestKeys keys, string certificatePath,
        string? ownedStore)
    {
        CertificatePath = certificatePath;
        InferencePort = inferencePort;
        ClusterPort = clusterPort;
        ManagementPort = managementPort;
        GrpcInferencePort = grpcInferencePort;
        Keys = keys;
        _ownedStore = ownedStore;
    }

    /// <summary>The gateway's keys (token authorization is on, as by default).</summary>
    public TestKeys Keys { get; }

    /// <summary>A client of the inference API, presenting the inference key.</summary>
    public HttpClient InferenceClient(TimeSpan timeout) => KeyFiles.Client(InferenceAddress, Keys.Inference, timeout);

    /// <summary>A gRPC channel to the gateway's gRPC inference listener, presenting the inference key.</summary>
    public Grpc.Net.Client.GrpcChannel GrpcInferenceChannel() =>
        Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{GrpcInferencePort}", new Grpc.Net.Client.GrpcChannelOptions
        {
            HttpClient = KeyFiles.Client(new Uri($"http://127.0.0.1:{GrpcInferencePort}"), Keys.Inference, Timeout.InfiniteTimeSpan),
            DisposeHttpClient = true,
        });

    /// <summary>A client of the management API, presenting the management key.</summary>
    public HttpClient ManagementClient(TimeSpan timeout) => KeyFiles.Client(ManagementAddress, Keys.Management, timeout);

    public int InferencePort { get; }

    public int GrpcInferencePort { get; }

    public int ManagementPort { get; }

    /// <summary>The gateway's cluster (Akka.Remote) port.</summary>
    public int ClusterPort { get; }

    /// <summary>Each worker's cluster port, in worker order.</summary>
    public IReadOnlyList<int> WorkerClusterPorts { get; private init; } = [];

    /// <summary>The cluster certificate (PKCS#12, no password) every node holds.</summary>
    public string CertificatePath { get; }

    public ServeProcess Gateway => _processes[0];

    public IReadOnlyList<ServeProcess> Workers => [.. _processes.Skip(1)];

    public Uri InferenceAddress => new($"http://127.0.0.1:{InferencePort}");

    public Uri ManagementAddress => new($"http://127.0.0.1:{ManagementPort}");

    /// <summary>A cluster over a new temporary model store, deleted with the cluster; start-up models from <paramref name="models"/>.</summary>
    public static Task<LocalCluster> StartAsync(int workers, string models, Action<string> prepareModelStore)
    {
        var store = Directory.CreateTempSubdirectory("serve-cluster-").FullName;
        prepareModelStore(store);
        return StartAsync(workers, store, ["--models", models, "--data-dir", Path.Combine(store, "gateway-data")], ownsStore: true);
    }

    /// <summary>
    /// A cluster over <paramref name="store"/>, the gateway started with <paramref name="gatewayArguments"/>,
    /// worker i (0-based) with the extra environment <paramref name="workerEnvironment"/> gives it.
    /// </summary>
    public static async Task<LocalCluster> StartAsync(int workers, string store, IReadOnlyList<string> gatewayArguments, bool ownsStore = false,
        Func<int, IReadOnlyDictionary<string, string>>? workerEnvironment = null)
    {
        var ports = FreePorts.Take(6 + workers);
        var seed = $"akka.ssl.tcp://serve@127.0.0.1:{ports[3]}";
        // The key file and the certificate live with the store, so a cluster started again over it keeps them.
        var keyFile = Path.Combine(store, ".keys", "key_file.json");
        var keys = File.Exists(keyFile) ? ReadKeys(keyFile) : KeyFiles.Write(keyFile);
        var certificate = Path.Combine(store, ".keys", "cluster.p12");
        if (!File.Exists(certificate))
        {
            await ClusterCertificates.CreateAsync(certificate);
        }

        var cluster = new LocalCluster(ports[0], ports[1], ports[4], ports[3], keys, certificate, ownsStore ? store : null)
        {
            WorkerClusterPorts = [.. ports.Skip(6)],
        };
        cluster._gatewayStart = () => ServeProcess.Start("gateway", ServeProcess.BuiltDll("Gateway", "Serve.Gateway.dll"),
            new Dictionary<string, string> { ["Serve__Security__KeyFile"] = keyFile, ["Serve__Cluster__Tls__Keystore"] = certificate },
        [
            "--inference-address", $"http://127.0.0.1:{ports[0]}",
            "--management-address", $"http://127.0.0.1:{ports[1]}",
            "--metrics-address", $"http://127.0.0.1:{ports[2]}",
            "--grpc-inference-address", $"http://127.0.0.1:{ports[4]}",
            "--grpc-management-address", $"http://127.0.0.1:{ports[5]}",
            "--cluster-port", Port(ports[3]),
            "--seed", seed,
            "--model-store", store,
            .. gatewayArguments,
        ]);
        cluster._processes.Add(cluster._gatewayStart());
        for (var i = 0; i < workers; i++)
        {
            // Each worker's placement name is its process name, so tests can pin to it and read describe.
            var name = $"worker-{i + 1}";
            var port = ports[6 + i];
            var environment = new Dictionary<string, string> { ["Serve__Node__Name"] = name, ["Serve__Cluster__Tls__Keystore"] = certificate };
            foreach (var (key, value) in workerEnvironment?.Invoke(i) ?? new Dictionary<string, string>())
            {
                environment[key] = value;
            }

            var start = () => ServeProcess.Start(name, ServeProcess.BuiltDll("Node", "Serve.Node.dll"), environment,
                "--cluster-port", Port(port),
                "--seed", seed,
                "--model-store", store);
            cluster._workerStarts.Add(start);
            cluster._processes.Add(start());
        }

        return cluster;
    }

    /// <summary>
    /// Waits until every worker has joined and reported its devices (<c>GET /cluster</c>): before that a
    /// placement naming a worker is refused, since the registry does not know it yet.
    /// </summary>
    public async Task WaitForWorkersAsync(HttpClient management, TimeSpan timeout, CancellationToken token)
    {
        var names = Workers.Select(w => w.Name).ToHashSet(StringComparer.Ordinal);
        await Waiting.UntilAsync(async () =>
        {
            using var cluster = System.Text.Json.JsonDocument.Parse(await management.GetStringAsync("/cluster", token));
            var reported = cluster.RootElement.GetProperty("members").EnumerateArray()
                .Where(m => m.GetProperty("name").ValueKind == System.Text.Json.JsonValueKind.String && m.GetProperty("devices").GetArrayLength() > 0)
                .Select(m => m.GetProperty("name").GetString()!);
            return names.IsSubsetOf(reported);
        }, timeout, $"workers {string.Join(", ", names)} to join and report their devices", Diagnostics);
    }

    /// <summary>
    /// A planned restart of worker <paramref name="index"/> (0-based): SIGTERM, wait for it to exit, start it
    /// again with the same name, port and settings. Returns the new process.
    /// </summary>
    public async Task<ServeProcess> RestartWorkerAsync(int index, TimeSpan timeout)
    {
        var old = _processes[index + 1];
        old.Terminate();
        await old.ExitCodeAsync(timeout);
        var started = _workerStarts[index]();
        _processes[index + 1] = started;
        await old.DisposeAsync();
        return started;
    }

    /// <summary>
    /// Kills the gateway with SIGKILL, waits for it to exit and starts it again with the same ports and
    /// settings (its data directory included). Returns the new process.
    /// </summary>
    public async Task<ServeProcess> KillAndRestartGatewayAsync(TimeSpan timeout)
    {
        var old = _processes[0];
        old.Kill();
        await old.ExitCodeAsync(timeout);
        _processes[0] = _gatewayStart();
        await old.DisposeAsync();
        return _processes[0];
    }

    public string Diagnostics() => string.Join(Environment.NewLine, _processes.Select(p => p.Tail()));

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        if (_ownedStore is not null)
        {
            Directory.Delete(_ownedStore, recursive: true);
        }
    }

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    private static TestKeys ReadKeys(string keyFile)
    {
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(keyFile));
        string Key(string name) => document.RootElement.GetProperty(name).GetProperty("key").GetString()!;
        return new TestKeys(Key("inference"), Key("management"), Key("API"));
    }
}
