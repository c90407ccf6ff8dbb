namespace Serve.Cluster.Tests;

/// <summary>A gateway process and N worker processes on loopback, with free ports and a shared model store.</summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<ServeProcess> _processes = [];

    private LocalCluster(string modelStore, int inferencePort, string seed)
    {
        ModelStore = modelStore;
        InferencePort = inferencePort;
        Seed = seed;
    }

    public string ModelStore { get; }

    public int InferencePort { get; }

    public string Seed { get; }

    public ServeProcess Gateway => _processes[0];

    public IReadOnlyList<ServeProcess> Workers => [.. _processes.Skip(1)];

    public Uri InferenceAddress => new($"http://127.0.0.1:{InferencePort}");

    public static LocalCluster Start(int workers, string models, Action<string> prepareModelStore)
    {
        var store = Directory.CreateTempSubdirectory("serve-cluster-").FullName;
        prepareModelStore(store);
        var ports = FreePorts.Take(4 + workers);
        var seed = $"akka.tcp://serve@127.0.0.1:{ports[3]}";
        var cluster = new LocalCluster(store, ports[0], seed);
        cluster._processes.Add(ServeProcess.Start("gateway", ServeProcess.BuiltDll("Gateway", "Serve.Gateway.dll"),
            "--inference-address", $"http://127.0.0.1:{ports[0]}",
            "--management-address", $"http://127.0.0.1:{ports[1]}",
            "--metrics-address", $"http://127.0.0.1:{ports[2]}",
            "--cluster-port", ports[3].ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--seed", seed,
            "--model-store", store,
            "--data-dir", Path.Combine(store, "gateway-data"),
            "--models", models));
        for (var i = 0; i < workers; i++)
        {
            cluster._processes.Add(ServeProcess.Start($"worker-{i + 1}", ServeProcess.BuiltDll("Node", "Serve.Node.dll"),
                "--role", "worker",
                "--cluster-port", ports[4 + i].ToString(System.Globalization.CultureInfo.InvariantCulture),
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

        Directory.Delete(ModelStore, recursive: true);
    }
}
