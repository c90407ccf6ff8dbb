using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Serve.Actors.Protocol;

namespace Serve.Bench;

/// <summary>One row of the comparison table.</summary>
public sealed record Row(string Model, string Setup, int Concurrency, double Throughput, double P50Ms, double P90Ms, double P99Ms, long Errors, string Note);

/// <summary>
/// The side-by-side comparison, all in one run on one machine: (a) the raw in-process forward at its best
/// batch size, (b) a plain ASP.NET Core endpoint calling TorchSharp, (c) Serve standalone, (d) Serve as a
/// gateway process and one worker process; (c) and (d) over HTTP and over gRPC (Predictions, and ModelInfer
/// with raw contents). Every server runs in its own process; the load generator runs here. Throughput and
/// latency are the median of several rounds.
/// </summary>
public sealed class Comparison(TimeSpan warmUp, TimeSpan duration, TextWriter log)
{
    public async Task<IReadOnlyList<Row>> RunAsync(
        string modelName, int[] concurrencies, int batchSize, int rounds, CancellationToken cancellationToken)
    {
        var store = Directory.CreateTempSubdirectory("serve-bench-").FullName;
        var setups = new List<Setup>();
        try
        {
            var model = modelName == "tiny" ? BenchModel.Tiny(store) : BenchModel.ResNet18();
            log.WriteLine($"== {model.Name}: raw forward by batch size");
            var raw = RawForward.Measure(model, store, modelName == "tiny" ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(6));
            foreach (var (batch, rate) in raw.ByBatch)
            {
                log.WriteLine($"   batch {batch,4}: {rate,10:0.0} items/s");
            }

            var rows = new List<Row>
            {
                new(model.Name, "(a) raw forward, in-process", 0, raw.ItemsPerSecond, double.NaN, double.NaN, double.NaN, 0,
                    $"best batch {raw.BestBatch}"),
            };

            var models = modelName == "tiny"
                ? new Dictionary<string, string> { ["Serve__LoadModels"] = $"tiny=tiny.pt?batch_size={batchSize}&max_batch_delay=0" }
                : new Dictionary<string, string>
                {
                    ["Serve__Models__0__Name"] = "resnet18",
                    ["Serve__Models__0__Architecture"] = "resnet18",
                    ["Serve__Models__0__Handler"] = "image_classifier",
                    ["Serve__Models__0__BatchSize"] = batchSize.ToString(CultureInfo.InvariantCulture),
                    ["Serve__Models__0__MaxBatchDelay"] = "0",
                };
            models["Serve__ModelStore"] = store;
            models["Serve__Registry__Journal"] = "memory";
            models["Serve__DefaultModel__Enabled"] = "false";
            models["Logging__LogLevel__Default"] = "Warning";
            // Token authorization stays on, as by default: the servers keep the keys written here, and the
            // load presents them (the peer ignores them).
            models["Serve__Security__KeyFile"] = Path.Combine(store, ".keys", "key_file.json");
            var keys = KeyFiles.Write(models["Serve__Security__KeyFile"]);
            // Cluster TLS stays on too: the gateway and the worker hold one certificate.
            models["Serve__DataDirectory"] = Path.Combine(store, "data");
            models["Serve__Cluster__Tls__Keystore"] = await ClusterCertificates.CreateAsync(Path.Combine(store, ".keys", "cluster.p12"));
            var standalone = ServeProcess.BuiltDll("Standalone", "Serve.Standalone.dll");
            var worker = ServeProcess.BuiltDll("Node", "Serve.Node.dll");
            var gateway = ServeProcess.BuiltDll("Gateway", "Serve.Gateway.dll");

            // All setups run side by side and are measured in turns, round after round, so that whatever
            // else the machine does affects each of them alike; each figure is the median of its rounds.
            setups.Add(Setup.Start(model, "(b) plain ASP.NET + TorchSharp", grpc: false, (port, _) =>
                [ServeProcess.Start("peer", typeof(Comparison).Assembly.Location, "peer", "--model", model.Name, "--store", store, "--port", Port(port))]));
            setups.Add(Setup.Start(model, "(c) Serve standalone", grpc: true, (port, grpcPort) =>
                [ServeProcess.Start("serve", standalone, models, Listeners(port, grpcPort, clusterPort: 0))]));
            setups.Add(Setup.Start(model, "(d) Serve gateway + 1 worker", grpc: true, (port, grpcPort) =>
            {
                var clusterPorts = FreePorts.Take(2);
                var seed = $"akka.ssl.tcp://serve@127.0.0.1:{clusterPorts[0]}";
                return
                [
                    ServeProcess.Start("gateway", gateway, models, [.. Listeners(port, grpcPort, clusterPorts[0]), "--seed", seed]),
                    ServeProcess.Start("worker", worker, models, "--cluster-port", Port(clusterPorts[1]), "--seed", seed),
                ];
            }));

            // Serve's setups are measured over HTTP and over each gRPC API, on the same processes; the peer
            // speaks HTTP only.
            var targets = setups.SelectMany(setup => setup.GrpcUrl is null
                    ? new[] { new Target(setup, null) }
                    : [new Target(setup, null), new Target(setup, GrpcApi.Predictions), new Target(setup, GrpcApi.ModelInfer)])
                .ToList();
            foreach (var setup in setups)
            {
                await WaitServingAsync(setup.Url, model, keys.Inference, setup.Processes, cancellationToken);
            }

            foreach (var target in targets.Where(t => t.Api is not null))
            {
                // Fails now rather than after a run of errors: the listener is up once HTTP answers.
                if (await GrpcLoadGenerator.TryOnceAsync(target.Setup.GrpcUrl!, target.Api!.Value, model, keys.Inference, cancellationToken) is { } error)
                {
                    throw new InvalidOperationException($"{target.Name} does not answer: {error}\n{string.Join("\n", target.Setup.Processes.Select(p => p.Tail()))}");
                }
            }

            var samples = new Dictionary<(string Target, int Concurrency), List<LoadResult>>();
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var concurrency in concurrencies)
                {
                    foreach (var target in targets)
                    {
                        var result = target.Api is { } api
                            ? await GrpcLoadGenerator.RunAsync(target.Setup.GrpcUrl!, api, model, keys.Inference, concurrency, warmUp, duration, cancellationToken)
                            : await LoadGenerator.RunAsync(target.Setup.Url, model.Payload, model.ContentType, keys.Inference, concurrency, warmUp, duration, cancellationToken);
                        log.WriteLine($"   round {round}: {model.Name}, {target.Name}, {concurrency} client(s): {result.Throughput:0.0} req/s, " +
                                      $"p50 {result.P50Ms:0.00} ms, p99 {result.P99Ms:0.00} ms, errors {result.Errors} {result.FirstError}");
                        (samples.TryGetValue((target.Name, concurrency), out var list) ? list : samples[(target.Name, concurrency)] = []).Add(result);
                    }
                }
            }

            // ModelInfer's rows say what tensor they sent, since it is not the HTTP body.
            var tensorNote = $"{(model.Tensor.DataType == TensorDataType.BYTES ? "the JPEG as " : "")}{model.Tensor.DataType} [{string.Join(",", model.Tensor.Shape)}], raw";
            foreach (var target in targets)
            {
                foreach (var concurrency in concurrencies)
                {
                    var runs = samples[(target.Name, concurrency)];
                    var median = runs.OrderBy(r => r.Throughput).ElementAt(runs.Count / 2);
                    string[] notes =
                    [
                        runs.Count > 1 ? $"median of {runs.Count}; {runs.Min(r => r.Throughput):0.#}-{runs.Max(r => r.Throughput):0.#}/s" : "",
                        target.Api == GrpcApi.ModelInfer ? tensorNote : "",
                    ];
                    rows.Add(new Row(model.Name, target.Name, concurrency, median.Throughput, median.P50Ms, median.P90Ms, median.P99Ms,
                        runs.Sum(r => r.Errors), string.Join("; ", notes.Where(n => n.Length > 0))));
                }
            }

            return rows;
        }
        finally
        {
            foreach (var setup in setups)
            {
                await setup.DisposeAsync();
            }

            Directory.Delete(store, recursive: true);
        }
    }

    /// <summary>
    /// One server setup under test: its processes, the URL the HTTP load goes to, and the address of its gRPC
    /// inference listener (null when it has none).
    /// </summary>
    private sealed record Setup(string Name, Uri Url, Uri? GrpcUrl, ServeProcess[] Processes) : IAsyncDisposable
    {
        /// <summary>Starts the processes, telling <paramref name="start"/> the HTTP inference port and the gRPC one.</summary>
        public static Setup Start(BenchModel model, string name, bool grpc, Func<int, int, ServeProcess[]> start)
        {
            var ports = FreePorts.Take(2);
            return new Setup(name, new Uri($"http://127.0.0.1:{ports[0]}/predictions/{model.Name}"),
                grpc ? new Uri($"http://127.0.0.1:{ports[1]}") : null, start(ports[0], ports[1]));
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var process in Processes)
            {
                await process.DisposeAsync();
            }
        }
    }

    /// <summary>A setup measured over one API: HTTP when <paramref name="Api"/> is null, else that gRPC call.</summary>
    private sealed record Target(Setup Setup, GrpcApi? Api)
    {
        public string Name => Api switch
        {
            null => Setup.Name,
            GrpcApi.Predictions => $"{Setup.Name}, gRPC Predictions",
            _ => $"{Setup.Name}, gRPC ModelInfer raw",
        };
    }

    private static async Task WaitServingAsync(Uri url, BenchModel model, string key, ServeProcess[] processes, CancellationToken cancellationToken)
    {
        using var client = KeyFiles.Client(url, key, TimeSpan.FromSeconds(10));
        await Waiting.UntilAsync(async () =>
        {
            using var content = new ByteArrayContent(model.Payload);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(model.ContentType);
            using var response = await client.PostAsync(url, content, cancellationToken);
            return response.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(120), $"{url} to answer", () => string.Join("\n", processes.Select(p => p.Tail())));
    }

    private static string[] Listeners(int inferencePort, int grpcInferencePort, int clusterPort)
    {
        var ports = FreePorts.Take(3);
        return
        [
            "--inference-address", $"http://127.0.0.1:{inferencePort}",
            "--management-address", $"http://127.0.0.1:{ports[0]}",
            "--metrics-address", $"http://127.0.0.1:{ports[1]}",
            "--grpc-inference-address", $"http://127.0.0.1:{grpcInferencePort}",
            "--grpc-management-address", $"http://127.0.0.1:{ports[2]}",
            "--cluster-port", Port(clusterPort),
        ];
    }

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    public static string Table(IReadOnlyList<Row> rows)
    {
        var text = new StringBuilder();
        text.AppendLine("| model | setup | clients | throughput (/s) | p50 ms | p90 ms | p99 ms | errors | vs (a) | vs (b) | note |");
        text.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var row in rows)
        {
            var raw = rows.First(r => r.Model == row.Model && r.Setup.StartsWith("(a)", StringComparison.Ordinal));
            var peer = rows.FirstOrDefault(r => r.Model == row.Model && r.Setup.StartsWith("(b)", StringComparison.Ordinal) && r.Concurrency == row.Concurrency);
            string Ms(double v) => double.IsNaN(v) ? "" : v.ToString("0.00", CultureInfo.InvariantCulture);
            var vsRaw = row == raw ? "" : Ratio(row.Throughput / raw.Throughput);
            var vsPeer = peer is null || row.Setup.StartsWith("(b)", StringComparison.Ordinal) ? "" : Ratio(row.Throughput / peer.Throughput);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Model} | {row.Setup} | {(row.Concurrency == 0 ? "" : row.Concurrency)} | {row.Throughput:0.0} | {Ms(row.P50Ms)} | {Ms(row.P90Ms)} | {Ms(row.P99Ms)} | {row.Errors} | {vsRaw} | {vsPeer} | {row.Note} |");
        }

        return text.ToString();
    }

    private static string Ratio(double ratio) =>
        ratio.ToString(ratio < 0.01 ? "0.0e0" : "0.00", CultureInfo.InvariantCulture);

    public static string Json(IReadOnlyList<Row> rows) =>
        JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });
}
