using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Serve.Gateway.Grpc.Oip;
using Serve.Gateway.Grpc.TorchServe;

namespace Serve.Cluster.Tests;

/// <summary>
/// gRPC over real Kestrel HTTP/2 listeners: a gateway process (no libtorch) answering ModelInfer and
/// Predictions with a model that runs in a worker process. The clients are generated in this project
/// from the gateway's .proto files, as any outside client's would be.
/// </summary>
public sealed class GrpcClusterTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task ModelInfer_and_Predictions_go_through_the_gateway_process_to_the_model_on_a_worker_process()
    {
        var token = TestContext.Current.CancellationToken;
        await using var cluster = await LocalCluster.StartAsync(workers: 1, "tiny=tiny.pt", store => TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt")));
        using var http = cluster.InferenceClient(TimeSpan.FromSeconds(30));
        await Waiting.UntilAsync(async () => (await http.GetAsync("/v2/models/tiny/ready", token)).IsSuccessStatusCode,
            StartTimeout, "tiny to be ready on the worker", cluster.Diagnostics);

        using var channel = cluster.GrpcInferenceChannel();
        var oip = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var request = new ModelInferRequest { ModelName = "tiny", Id = "across-processes" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Shape = { 1, 10 } });
        request.RawInputContents.Add(ByteString.CopyFrom(Enumerable.Repeat(1f, 10).SelectMany(BitConverter.GetBytes).ToArray()));

        var call = oip.ModelInferAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: token);
        var response = await call;
        Assert.Equal("across-processes", response.Id);
        var raw = response.RawOutputContents.Single().ToByteArray();
        Assert.Equal(TestModels.LinReluOfOnes, Enumerable.Range(0, raw.Length / 4).Select(i => BitConverter.ToSingle(raw, i * 4)));
        // The gateway process carries no libtorch: the forward pass ran on the worker.
        Assert.Equal("tiny/1.0/0", (await call.ResponseHeadersAsync).GetValue("x-serve-replica"));

        var torchServe = new InferenceAPIsService.InferenceAPIsServiceClient(channel);
        var prediction = await torchServe.PredictionsAsync(new PredictionsRequest
        {
            ModelName = "tiny", Input = { ["data"] = ByteString.CopyFromUtf8(TestModels.OnesJson) },
        }, cancellationToken: token);
        Assert.Equal(TestModels.LinReluOfOnes, JsonDocument.Parse(prediction.Prediction.ToStringUtf8()).RootElement[0].EnumerateArray().Select(v => v.GetSingle()));

        var unknown = await Assert.ThrowsAsync<RpcException>(() => oip.ModelInferAsync(new ModelInferRequest(request) { ModelName = "nope" }, cancellationToken: token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        // The gRPC listener speaks only HTTP/2: the HTTP API is not served there over HTTP/1.1.
        using var http1 = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var content = new StringContent("{}", Encoding.UTF8, "application/json");
        using var refused = await http1.PostAsync($"http://127.0.0.1:{cluster.GrpcInferencePort}/v2/models/tiny/infer", content, token);
        // Kestrel answers a request that is not HTTP/2 with 400 and closes the connection.
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, refused.StatusCode);
    }

    [Fact]
    public async Task A_request_that_decodes_past_the_frame_between_nodes_is_refused_at_once_not_timed_out()
    {
        var token = TestContext.Current.CancellationToken;
        await using var cluster = await LocalCluster.StartAsync(workers: 1, "tiny=tiny.pt", store => TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt")));
        using var http = cluster.InferenceClient(TimeSpan.FromSeconds(60));
        await Waiting.UntilAsync(async () => (await http.GetAsync("/v2/models/tiny/ready", token)).IsSuccessStatusCode,
            StartTimeout, "tiny to be ready on the worker", cluster.Diagnostics);

        // 5.8 MB of JSON (within max_request_size) is 23 MB of INT64: more than a 16 MiB frame.
        const int elements = 2_900_000;
        var json = new StringBuilder("""{"inputs": [{"name": "input", "shape": [""" + elements + """], "datatype": "INT64", "data": [""");
        json.Insert(json.Length, "1,", elements - 1).Append("1]}]}");
        var started = System.Diagnostics.Stopwatch.StartNew();
        using var response = await http.PostAsync("/v2/models/tiny/infer", new StringContent(json.ToString(), Encoding.UTF8, "application/json"), token);
        Assert.Equal(System.Net.HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("bytes a message to another node can carry", await response.Content.ReadAsStringAsync(token));

        using var channel = cluster.GrpcInferenceChannel();
        var request = new ModelInferRequest { ModelName = "tiny" };
        var tensor = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "INT64", Shape = { elements }, Contents = new() };
        tensor.Contents.Int64Contents.Add(Enumerable.Repeat(1L, elements));
        request.Inputs.Add(tensor);
        var grpc = await Assert.ThrowsAsync<RpcException>(() =>
            new GRPCInferenceService.GRPCInferenceServiceClient(channel).ModelInferAsync(request, cancellationToken: token).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, grpc.StatusCode);
        Assert.Contains("bytes a message to another node can carry", grpc.Status.Detail);

        // Both answered promptly: the model's response timeout (120 s) was never waited out.
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), $"took {started.Elapsed}");
    }
}
