using System.Net;
using System.Text.Json;

namespace Serve.Cluster.Tests;

/// <summary>
/// The standalone server started with a TorchServe config.properties (--ts-config): its keys take effect,
/// environment variables override the file, and keys Serve does not apply are listed in the log.
/// </summary>
public sealed class TorchServeConfigFileTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_torchserve_config_file_configures_the_standalone_server()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-ts-config-").FullName;
        try
        {
            TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));
            TorchScriptWriter.Identity(Path.Combine(store, "echo.pt"));
            var ports = FreePorts.Take(4);
            var config = Path.Combine(store, "config.properties");
            await File.WriteAllTextAsync(config, $"""
                # A TorchServe configuration, as a TorchServe user has it
                inference_address=http://127.0.0.1:{ports[0]}
                management_address : http://127.0.0.1:{ports[1]}
                metrics_address http://127.0.0.1:{ports[2]}
                grpc_inference_port={ports[3]}
                grpc_management_address=127.0.0.1
                grpc_management_port=0
                model_store=$$SERVE_TEST_STORE$$
                load_models=tiny=tiny.pt
                enable_model_api=true
                job_queue_size=7
                default_workers_per_model=1
                number_of_netty_threads=32
                a_key_from_the_future=1
                """, token);

            var keys = KeyFiles.Write(Path.Combine(store, "data", "key_file.json"));
            await using var server = ServeProcess.Start("standalone", ServeProcess.BuiltDll("Standalone", "Serve.Standalone.dll"),
                new Dictionary<string, string>
                {
                    ["SERVE_TEST_STORE"] = store,
                    ["Serve__DefaultWorkersPerModel"] = "2", // environment variables override the file
                },
                "--ts-config", config, "--cluster-port", "0", "--data-dir", Path.Combine(store, "data"));

            using var inference = KeyFiles.Client(new Uri($"http://127.0.0.1:{ports[0]}"), keys.Inference, Timeout);
            using var management = KeyFiles.Client(new Uri($"http://127.0.0.1:{ports[1]}"), keys.Management, Timeout);
            await Waiting.UntilAsync(async () => (await inference.GetAsync("/v2/models/tiny/ready", token)).IsSuccessStatusCode,
                Timeout, "the model named by load_models to serve on inference_address", () => server.Tail());

            var described = JsonDocument.Parse(await management.GetStringAsync("/models/tiny", token)).RootElement[0];
            Assert.Equal(7, described.GetProperty("jobQueueSize").GetInt32());
            Assert.Equal(2, described.GetProperty("minWorkers").GetInt32());

            // enable_model_api=true: registering is allowed.
            using var registered = await management.PostAsync("/models?url=echo.pt&initial_workers=1", null, token);
            Assert.Equal(HttpStatusCode.OK, registered.StatusCode);

            // grpc_inference_port: TorchServe's gRPC inference API answers there.
            using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{ports[3]}", new Grpc.Net.Client.GrpcChannelOptions
            {
                HttpClient = KeyFiles.Client(new Uri($"http://127.0.0.1:{ports[3]}"), keys.Inference, Timeout),
                DisposeHttpClient = true,
            });
            var ping = await new Serve.Gateway.Grpc.TorchServe.InferenceAPIsService.InferenceAPIsServiceClient(channel)
                .PingAsync(new Google.Protobuf.WellKnownTypes.Empty(), cancellationToken: token);
            Assert.Equal("Healthy", JsonDocument.Parse(ping.Health).RootElement.GetProperty("status").GetString());

            Assert.True(server.Logged($"Read TorchServe configuration {config}"), server.Tail());
            Assert.True(server.Logged("number_of_netty_threads (does not apply to Serve)"), server.Tail());
            Assert.True(server.Logged("Unknown keys in") && server.Logged("a_key_from_the_future"), server.Tail());
            output.WriteLine(string.Join('\n', server.Lines.Where(l => l.Contains("config", StringComparison.OrdinalIgnoreCase))));
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }
}
