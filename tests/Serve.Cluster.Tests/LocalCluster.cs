using System.Globalization;

namespace Serve.Cluster.Tests;

/// <summary>
/// A gateway process and N worker processes on loopback, with free ports, over a model store the caller
/// owns (so a test can stop a whole cluster and start another over the same store and data).
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<ServeProcess> _processes = [];
    private readonly string? _ownedStore;

    private LocalCluster(int inferencePort, int managementPort, int grpcInferencePort, string? ownedStore)
    {
        InferencePort = inferencePort;
        ManagementPort = managementPort;
        GrpcInferencePort = grpcInferencePort;
        _ownedStore = ownedStore;
    }

    public int InferencePort { get; }

    public int GrpcInferencePort { get; }

    public int ManagementPort { get; }

    public ServeProcess Gateway => _processes[0];

    public IReadOnlyList<ServeProcess> Workers => [.. _processes.Skip(1)];

    public Uri InferenceAddress => new($"http://127.0.0.1:{InferencePort}");

    public Uri ManagementAddress => new($"http://127.0.0.1:{ManagementPort}");

    /// <summary>A cluster over a new temporary model store, deleted with the cluster; start-up models from <paramref name="models"/>.</summary>
    public static LocalCluster Start(int workers, string models, Action<string> prepareModelStore)
    {
        var store = Directory.CreateTempSubdirectory("serve-cluster-").FullName;
        prepareModelStore(store);
        return Start(workers, store, ["--models", models, "--data-dir", Path.Combine(store, "gateway-data")], ownsStore: true);
    }

    /// <summary>A cluster over <paramref name="store"/>, the gateway started with <paramref name="gatewayArguments"/>.</summary>
    public static LocalCluster Start(int workers, string store, IReadOnlyList<string> gatewayArguments, bool ownsStore = false)
    {
        var ports = FreePorts.Take(6 + workers);
        var seed = $"akka.tcp://serve@127.0.0.1:{ports[3]}";
        var cluster = new LocalCluster(ports[0], ports[1], ports[4], ownsStore ? store : null);
        cluster._processes.Add(ServeProcess.Start("gateway", ServeProcess.BuiltDll("Gateway", "Serve.Gateway.dll"),
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
        ]));
        for (var i = 0; i < workers; i++)
        {
            // Each worker's placement name is its process name, so tests can pin to it and read describe.
            var name = $"worker-{i + 1}";
            cluster._processes.Add(ServeProcess.Start(name, ServeProcess.BuiltDll("Node", "Serve.Node.dll"),
                new Dictionary<string, string> { ["Serve__Node__Name"] = name },
                "--role", "worker",
                "--cluster-port", Port(ports[6 + i]),
                "--seed", seed,
                "--model-store", store));
        }

        return cluster;
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
}
