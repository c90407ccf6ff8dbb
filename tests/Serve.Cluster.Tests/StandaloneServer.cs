namespace Serve.Cluster.Tests;

/// <summary>
/// The standalone server (`Serve.Node.dll`, gateway and worker in one process) started on free loopback
/// ports, with a key file written beforehand and clients that present its keys. Disposing stops the
/// process by its id.
/// </summary>
public sealed class StandaloneServer : IAsyncDisposable
{
    private StandaloneServer(ServeProcess process, int[] ports, TestKeys keys, TimeSpan timeout)
    {
        Process = process;
        Ports = ports;
        Keys = keys;
        Inference = KeyFiles.Client(new Uri($"http://127.0.0.1:{ports[0]}"), keys.Inference, timeout);
        Management = KeyFiles.Client(new Uri($"http://127.0.0.1:{ports[1]}"), keys.Management, timeout);
    }

    public ServeProcess Process { get; }

    /// <summary>Inference, management, metrics, gRPC inference and gRPC management, in that order.</summary>
    public int[] Ports { get; }

    public TestKeys Keys { get; }

    public HttpClient Inference { get; }

    public HttpClient Management { get; }

    public int GrpcInferencePort => Ports[3];

    /// <summary>Starts it over <paramref name="dataDirectory"/> (keys, registry) with <paramref name="arguments"/> besides the addresses.</summary>
    public static StandaloneServer Start(
        string dataDirectory, IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null, params string[] arguments)
    {
        var keys = KeyFiles.Write(Path.Combine(dataDirectory, "key_file.json"));
        var ports = FreePorts.Take(5);
        var process = ServeProcess.Start("standalone", ServeProcess.BuiltDll("Standalone", "Serve.Standalone.dll"), environment ?? new Dictionary<string, string>(),
        [
            .. arguments, "--cluster-port", "0", "--data-dir", dataDirectory,
            "--inference-address", $"http://127.0.0.1:{ports[0]}", "--management-address", $"http://127.0.0.1:{ports[1]}",
            "--metrics-address", $"http://127.0.0.1:{ports[2]}", "--grpc-inference-address", $"http://127.0.0.1:{ports[3]}",
            "--grpc-management-address", $"http://127.0.0.1:{ports[4]}",
        ]);
        return new StandaloneServer(process, ports, keys, timeout ?? TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        Inference.Dispose();
        Management.Dispose();
        await Process.DisposeAsync();
    }
}
