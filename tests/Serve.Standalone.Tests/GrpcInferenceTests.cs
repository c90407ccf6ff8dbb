using System.Net;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Serve.Gateway.Grpc.Oip;
using Serve.Gateway.Grpc.TorchServe;

namespace Serve.Standalone.Tests;

/// <summary>
/// TorchServe's and the Open Inference Protocol's gRPC inference services, health and reflection, against
/// the real standalone server in memory, with the clients generated from the same .proto files.
/// </summary>
public sealed class GrpcInferenceTests(ServeFactory serve) : IClassFixture<ServeFactory>, IAsyncLifetime
{
    public async ValueTask InitializeAsync() => await serve.WaitReadyAsync("linrelu", "identity", "addsub", "resnet18");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private InferenceAPIsService.InferenceAPIsServiceClient TorchServe() => new(serve.GrpcInference());

    private GRPCInferenceService.GRPCInferenceServiceClient Oip() => new(serve.GrpcInference());

    private static PredictionsRequest Predict(string model, string json, string? sequence = null)
    {
        var request = new PredictionsRequest { ModelName = model, Input = { ["data"] = ByteString.CopyFromUtf8(json) } };
        if (sequence is not null)
        {
            request.SequenceId = sequence;
        }

        return request;
    }

    [Fact]
    public async Task Ping_says_healthy_as_json()
    {
        var ping = await TorchServe().PingAsync(new Empty(), cancellationToken: Token);
        Assert.Equal("Healthy", JsonDocument.Parse(ping.Health).RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Predictions_answers_what_the_http_api_answers_and_echoes_the_sequence_id()
    {
        using var http = serve.Inference();
        var expected = await (await http.PostAsync("/predictions/linrelu", Json.Body(TestModels.OnesJson), Token)).Content.ReadAsStringAsync(Token);

        var call = TorchServe().PredictionsAsync(Predict("linrelu", TestModels.OnesJson, sequence: "seq-7"), cancellationToken: Token);
        var response = await call;
        Assert.Equal(expected, response.Prediction.ToStringUtf8());
        Assert.Equal("seq-7", response.SequenceId);
        Assert.Null(response.Status);
        var headers = await call.ResponseHeadersAsync;
        Assert.Equal("linrelu/1.0/0", headers.GetValue("x-serve-replica"));
        Assert.NotNull(headers.GetValue("x-request-id"));
    }

    [Fact]
    public async Task Predictions_failures_carry_precise_codes_not_internal()
    {
        var client = TorchServe();
        var unknown = await Assert.ThrowsAsync<RpcException>(() => client.PredictionsAsync(Predict("nope", "[1]"), cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("Model not found: nope", unknown.Status.Detail);

        var noName = await Assert.ThrowsAsync<RpcException>(() => client.PredictionsAsync(Predict("", "[1]"), cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noName.StatusCode);
        Assert.Contains("model_name is required", noName.Status.Detail);

        var noInput = await Assert.ThrowsAsync<RpcException>(() =>
            client.PredictionsAsync(new PredictionsRequest { ModelName = "linrelu" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noInput.StatusCode);

        var badInput = await Assert.ThrowsAsync<RpcException>(() =>
            client.PredictionsAsync(Predict("linrelu", "this is not JSON"), cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badInput.StatusCode);
        Assert.Contains("not valid JSON", badInput.Status.Detail);

        var unknownVersion = await Assert.ThrowsAsync<RpcException>(() =>
            client.PredictionsAsync(new PredictionsRequest(Predict("linrelu", "[1]")) { ModelVersion = "9.9" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknownVersion.StatusCode);
    }

    [Fact]
    public async Task StreamPredictions_streams_the_prediction()
    {
        using var call = TorchServe().StreamPredictions(Predict("linrelu", TestModels.OnesJson), cancellationToken: Token);
        var responses = await ReadAllAsync(call.ResponseStream);
        var prediction = Assert.Single(responses);
        Assert.Equal(TestModels.LinReluOfOnes, JsonSerializer.Deserialize<float[][]>(prediction.Prediction.ToStringUtf8())![0]);
    }

    [Fact]
    public async Task StreamPredictions2_answers_each_request_in_order_and_an_error_in_band_keeps_the_stream_open()
    {
        using var call = TorchServe().StreamPredictions2(cancellationToken: Token);
        string[] inputs = ["[[1,1,1,1,1,1,1,1,1,1]]", "[[2,2,2,2,2,2,2,2,2,2]]", "[[3,3,3,3,3,3,3,3,3,3]]"];
        await call.RequestStream.WriteAsync(Predict("linrelu", inputs[0]), Token);
        await call.RequestStream.WriteAsync(Predict("nope", inputs[0]), Token);
        await call.RequestStream.WriteAsync(Predict("linrelu", inputs[1], sequence: "mine"), Token);
        await call.RequestStream.WriteAsync(Predict("linrelu", inputs[2]), Token);
        await call.RequestStream.CompleteAsync();

        var responses = await ReadAllAsync(call.ResponseStream);
        Assert.Equal(4, responses.Count);

        var failed = responses[1];
        Assert.NotNull(failed.Status);
        Assert.Equal((int)StatusCode.NotFound, failed.Status.Code);
        Assert.Contains("Model not found: nope", failed.Status.Message);
        Assert.Equal("NOT_FOUND", failed.Status.Details.Single().Unpack<ErrorInfo>().Reason);

        using var http = serve.Inference();
        foreach (var (response, input) in new[] { (responses[0], inputs[0]), (responses[2], inputs[1]), (responses[3], inputs[2]) })
        {
            Assert.Null(response.Status);
            var expected = await (await http.PostAsync("/predictions/linrelu", Json.Body(input), Token)).Content.ReadAsStringAsync(Token);
            Assert.Equal(expected, response.Prediction.ToStringUtf8());
        }

        // Requests without a sequence id take the stream's; a given one is kept and becomes the stream's.
        Assert.StartsWith("serve-seq-", responses[0].SequenceId);
        Assert.Equal(responses[0].SequenceId, responses[1].SequenceId);
        Assert.Equal("mine", responses[2].SequenceId);
        Assert.Equal("mine", responses[3].SequenceId);
    }

    [Fact]
    public async Task A_cancelled_stream_ends_with_cancelled_and_the_server_keeps_serving()
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        using var call = TorchServe().StreamPredictions2(cancellationToken: cancel.Token);
        await call.RequestStream.WriteAsync(Predict("linrelu", TestModels.OnesJson), Token);
        Assert.True(await call.ResponseStream.MoveNext(Token));
        await cancel.CancelAsync();

        var cancelled = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Cancelled, cancelled.StatusCode);

        var after = await TorchServe().PredictionsAsync(Predict("linrelu", TestModels.OnesJson), cancellationToken: Token);
        Assert.Equal(TestModels.LinReluOfOnes, JsonSerializer.Deserialize<float[][]>(after.Prediction.ToStringUtf8())![0]);
    }

    [Fact]
    public async Task Server_and_model_health_and_metadata()
    {
        var client = Oip();
        Assert.True((await client.ServerLiveAsync(new ServerLiveRequest(), cancellationToken: Token)).Live);
        Assert.True((await client.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: Token)).Ready);
        var server = await client.ServerMetadataAsync(new ServerMetadataRequest(), cancellationToken: Token);
        Assert.Equal("serve", server.Name);
        Assert.Contains("binary_tensor_data", server.Extensions);

        Assert.True((await client.ModelReadyAsync(new ModelReadyRequest { Name = "addsub" }, cancellationToken: Token)).Ready);
        Assert.True((await client.ModelReadyAsync(new ModelReadyRequest { Name = "addsub", Version = "1.0" }, cancellationToken: Token)).Ready);
        var missing = await Assert.ThrowsAsync<RpcException>(() => client.ModelReadyAsync(new ModelReadyRequest { Name = "nope" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);

        // A TorchScript file declares its outputs only after its first forward pass (addsub returns a tuple of
        // two): run one, and wait for the learned signature to reach the catalog.
        var infer = new ModelInferRequest { ModelName = "addsub" };
        infer.Inputs.Add(Fp32("x", [1]));
        infer.Inputs.Add(Fp32("y", [1]));
        await client.ModelInferAsync(infer, cancellationToken: Token);
        ModelMetadataResponse metadata = null!;
        await Waiting.UntilAsync(async () =>
        {
            metadata = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "addsub" }, cancellationToken: Token);
            return metadata.Outputs.Count == 2;
        }, TimeSpan.FromSeconds(30), "addsub's learned signature (two outputs) in its metadata");
        Assert.Equal("addsub", metadata.Name);
        Assert.Equal(["1.0"], metadata.Versions);
        Assert.Equal("pytorch_torchscript", metadata.Platform);
        Assert.Equal(["x", "y"], metadata.Inputs.Select(i => i.Name));
        Assert.Equal("FP32", metadata.Inputs[0].Datatype);
        Assert.Equal(["output__0", "output__1"], metadata.Outputs.Select(o => o.Name));
    }

    [Fact]
    public async Task ModelInfer_with_typed_contents_answers_typed_contents()
    {
        var request = new ModelInferRequest { ModelName = "addsub", Id = "req-1" };
        request.Inputs.Add(Fp32("x", [1, 2, 3]));
        request.Inputs.Add(Fp32("y", [10, 20, 30]));
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "output__1" });

        var response = await Oip().ModelInferAsync(request, cancellationToken: Token);
        Assert.Equal("addsub", response.ModelName);
        Assert.Equal("1.0", response.ModelVersion);
        Assert.Equal("req-1", response.Id);
        Assert.Empty(response.RawOutputContents);
        var output = Assert.Single(response.Outputs);
        Assert.Equal("output__1", output.Name);
        Assert.Equal("FP32", output.Datatype);
        Assert.Equal([1L, 3L], output.Shape);
        Assert.Equal([-9f, -18f, -27f], output.Contents.Fp32Contents);
    }

    [Fact]
    public async Task ModelInfer_with_raw_contents_answers_raw_contents()
    {
        var request = new ModelInferRequest { ModelName = "addsub" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "FP32", Shape = { 2, 2 } });
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "y", Datatype = "FP32", Shape = { 2, 2 } });
        request.RawInputContents.Add(Raw([1, 2, 3, 4]));
        request.RawInputContents.Add(Raw([1, 1, 1, 1]));

        var response = await Oip().ModelInferAsync(request, cancellationToken: Token);
        Assert.Equal(2, response.Outputs.Count);
        Assert.All(response.Outputs, o => Assert.Null(o.Contents));
        Assert.Equal([2f, 3f, 4f, 5f], Floats(response.RawOutputContents[0]));
        Assert.Equal([0f, 1f, 2f, 3f], Floats(response.RawOutputContents[1]));
    }

    [Theory]
    [InlineData("INT8", new long[] { -128, 0, 127 })]
    [InlineData("INT16", new long[] { -32768, 1, 32767 })]
    [InlineData("INT64", new long[] { long.MinValue, 0, long.MaxValue })]
    [InlineData("UINT8", new long[] { 0, 1, 255 })]
    public async Task Integer_datatypes_round_trip_through_typed_contents(string datatype, long[] values)
    {
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = datatype, Shape = { values.Length }, Contents = new InferTensorContents() };
        switch (datatype)
        {
            case "INT64":
                input.Contents.Int64Contents.Add(values);
                break;
            case "UINT8":
                input.Contents.UintContents.Add(values.Select(v => (uint)v));
                break;
            default:
                input.Contents.IntContents.Add(values.Select(v => (int)v));
                break;
        }

        var response = await Oip().ModelInferAsync(new ModelInferRequest { ModelName = "identity", Inputs = { input } }, cancellationToken: Token);
        var output = Assert.Single(response.Outputs);
        Assert.Equal(datatype, output.Datatype);
        long[] returned = datatype switch
        {
            "INT64" => [.. output.Contents.Int64Contents],
            "UINT8" => [.. output.Contents.UintContents.Select(v => (long)v)],
            _ => [.. output.Contents.IntContents.Select(v => (long)v)],
        };
        Assert.Equal(values, returned);
    }

    [Fact]
    public async Task FP16_goes_raw_both_ways()
    {
        Half[] values = [(Half)1.5, (Half)(-2), (Half)0.25];
        var bytes = new byte[values.Length * 2];
        for (var i = 0; i < values.Length; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), values[i]);
        }

        var request = new ModelInferRequest { ModelName = "identity" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "FP16", Shape = { 3 } });
        request.RawInputContents.Add(ByteString.CopyFrom(bytes));
        var response = await Oip().ModelInferAsync(request, cancellationToken: Token);
        Assert.Equal("FP16", response.Outputs.Single().Datatype);
        Assert.Equal(bytes, response.RawOutputContents.Single().ToByteArray());

        var typed = new ModelInferRequest { ModelName = "identity" };
        typed.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "x", Datatype = "FP16", Shape = { 1 }, Contents = new InferTensorContents { Fp32Contents = { 1.5f } },
        });
        var refused = await Assert.ThrowsAsync<RpcException>(() => Oip().ModelInferAsync(typed, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Contains("raw_input_contents", refused.Status.Detail);
    }

    [Theory]
    [InlineData("wrong datatype", "is FP32 but its elements are in int_contents")]
    [InlineData("too few elements", "needs 4 elements, fp32_contents has 3")]
    [InlineData("raw size", "needs 16 bytes, got 12")]
    [InlineData("raw count", "raw_input_contents has 2 entries for 1 inputs")]
    [InlineData("unknown datatype", "datatype 'FLOAT' is not one of")]
    [InlineData("out of range", "element 300 is outside the datatype's range")]
    [InlineData("unknown model", "Model not found: nope")]
    public async Task ModelInfer_refuses_bad_requests_with_a_precise_code_and_message(string problem, string message)
    {
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "FP32", Shape = { 2, 2 } };
        var request = new ModelInferRequest { ModelName = "identity", Inputs = { input } };
        switch (problem)
        {
            case "wrong datatype":
                input.Contents = new InferTensorContents { IntContents = { 1, 2, 3, 4 } };
                break;
            case "too few elements":
                input.Contents = new InferTensorContents { Fp32Contents = { 1, 2, 3 } };
                break;
            case "raw size":
                request.RawInputContents.Add(Raw([1, 2, 3]));
                break;
            case "raw count":
                request.RawInputContents.Add(Raw([1, 2, 3, 4]));
                request.RawInputContents.Add(Raw([1, 2, 3, 4]));
                break;
            case "unknown datatype":
                input.Datatype = "FLOAT";
                break;
            case "out of range":
                input.Datatype = "UINT8";
                input.Shape.Clear();
                input.Shape.Add(1);
                input.Contents = new InferTensorContents { UintContents = { 300 } };
                break;
            case "unknown model":
                // The model is looked up before the input is read: an unknown model with no data is NOT_FOUND.
                request.ModelName = "nope";
                break;
        }

        var error = await Assert.ThrowsAsync<RpcException>(() => Oip().ModelInferAsync(request, cancellationToken: Token).ResponseAsync);
        Assert.Equal(problem == "unknown model" ? StatusCode.NotFound : StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(message, error.Status.Detail);
    }

    private const string TorchServeOip = "org.pytorch.serve.grpc.openinference.GRPCInferenceService";

    /// <summary>A call as a client generated from TorchServe's open_inference_grpc.proto makes it: its service name, KServe's messages.</summary>
    private static Task<TResponse> CallTorchServeOipAsync<TRequest, TResponse>(CallInvoker invoker, string rpc, TRequest request, MessageParser<TResponse> parser)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        var method = new Method<TRequest, TResponse>(MethodType.Unary, TorchServeOip, rpc,
            Marshallers.Create<TRequest>(m => m.ToByteArray(), _ => throw new InvalidOperationException("only sent")),
            Marshallers.Create(m => m.ToByteArray(), parser.ParseFrom));
        return invoker.AsyncUnaryCall(method, null, new CallOptions(cancellationToken: Token), request).ResponseAsync;
    }

    [Fact]
    public async Task Torchserves_name_for_the_oip_service_answers_as_kserves_does()
    {
        var invoker = serve.GrpcInference().CreateCallInvoker();
        Assert.True((await CallTorchServeOipAsync(invoker, "ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser)).Live);
        Assert.True((await CallTorchServeOipAsync(invoker, "ModelReady", new ModelReadyRequest { Name = "addsub" }, ModelReadyResponse.Parser)).Ready);
        Assert.Equal("addsub", (await CallTorchServeOipAsync(invoker, "ModelMetadata", new ModelMetadataRequest { Name = "addsub" }, ModelMetadataResponse.Parser)).Name);

        var request = new ModelInferRequest { ModelName = "addsub", Id = "ts-1" };
        request.Inputs.Add(Fp32("x", [1, 2, 3]));
        request.Inputs.Add(Fp32("y", [10, 20, 30]));
        var viaTorchServe = await CallTorchServeOipAsync(invoker, "ModelInfer", request, ModelInferResponse.Parser);
        var viaKServe = await Oip().ModelInferAsync(request, cancellationToken: Token);
        Assert.Equal(viaKServe, viaTorchServe);
        Assert.Equal("ts-1", viaTorchServe.Id);

        var missing = await Assert.ThrowsAsync<RpcException>(() =>
            CallTorchServeOipAsync(invoker, "ModelInfer", new ModelInferRequest { ModelName = "nope" }, ModelInferResponse.Parser));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);

        // The same keys as every inference service.
        var anonymous = await Assert.ThrowsAsync<RpcException>(() =>
            CallTorchServeOipAsync(serve.GrpcAnonymous(7070).CreateCallInvoker(), "ServerLive", new ServerLiveRequest(), ServerLiveResponse.Parser));
        Assert.Equal(StatusCode.Unauthenticated, anonymous.StatusCode);
    }

    [Fact]
    public async Task Health_follows_readiness_and_reflection_lists_the_services()
    {
        var health = new Health.HealthClient(serve.GrpcInference());
        foreach (var service in new[] { "", "inference.GRPCInferenceService", "org.pytorch.serve.grpc.inference.InferenceAPIsService",
                                        "org.pytorch.serve.grpc.management.ManagementAPIsService", TorchServeOip })
        {
            var answer = await health.CheckAsync(new HealthCheckRequest { Service = service }, cancellationToken: Token);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, answer.Status);
        }

        var unknown = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest { Service = "no.Such" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        var reflection = new ServerReflection.ServerReflectionClient(serve.GrpcInference());
        using var call = reflection.ServerReflectionInfo(cancellationToken: Token);
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" }, Token);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(Token));
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("org.pytorch.serve.grpc.inference.InferenceAPIsService", services);
        Assert.Contains("inference.GRPCInferenceService", services);
        Assert.Contains("org.pytorch.serve.grpc.management.ManagementAPIsService", services);
        Assert.Contains("grpc.health.v1.Health", services);
    }

    [Fact]
    public async Task Inference_services_answer_only_on_the_grpc_inference_listener()
    {
        var onManagement = new InferenceAPIsService.InferenceAPIsServiceClient(serve.GrpcManagement());
        var error = await Assert.ThrowsAsync<RpcException>(() => onManagement.PingAsync(new Empty(), cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);

        // Nor does the HTTP inference listener take gRPC calls.
        using var http = serve.Inference();
        using var content = new ByteArrayContent([0, 0, 0, 0, 0]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var response = await http.PostAsync("/inference.GRPCInferenceService/ServerLive", content, Token);
        Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Registering_over_grpc_is_refused_with_permission_denied_while_the_model_api_is_disabled()
    {
        var management = new Serve.Gateway.Grpc.Management.ManagementAPIsService.ManagementAPIsServiceClient(serve.GrpcManagement());
        var refused = await Assert.ThrowsAsync<RpcException>(() => management.RegisterModelAsync(
            new Serve.Gateway.Grpc.Management.RegisterModelRequest { Url = "identity.pt" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Contains("enable_model_api=true", refused.Status.Detail);

        var unregister = await Assert.ThrowsAsync<RpcException>(() => management.UnregisterModelAsync(
            new Serve.Gateway.Grpc.Management.UnregisterModelRequest { ModelName = "identity" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, unregister.StatusCode);
    }

    private static async Task<List<PredictionResponse>> ReadAllAsync(IAsyncStreamReader<PredictionResponse> stream)
    {
        var responses = new List<PredictionResponse>();
        while (await stream.MoveNext(Token))
        {
            responses.Add(stream.Current);
        }

        return responses;
    }

    private static ModelInferRequest.Types.InferInputTensor Fp32(string name, float[] values) => new()
    {
        Name = name, Datatype = "FP32", Shape = { 1, values.Length }, Contents = new InferTensorContents { Fp32Contents = { values } },
    };

    private static ByteString Raw(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return ByteString.CopyFrom(bytes);
    }

    private static float[] Floats(ByteString raw)
    {
        var bytes = raw.ToByteArray();
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }
}
