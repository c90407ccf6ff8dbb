using System.Net;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Serve.Actors.Protocol;
using Serve.Gateway.Grpc.Oip;
using Serve.Gateway.Grpc.TorchServe;

namespace Serve.Gateway.Tests;

/// <summary>
/// What the gateway itself does with a request, whatever the replica: how each protocol's input reaches
/// the replica, how an answer is rendered in each protocol, and how each failure is told. The replicas are
/// <see cref="ScriptedInferenceClient"/>.
/// </summary>
public sealed class GatewayEdgeTests(GatewayFactory gateway) : IClassFixture<GatewayFactory>, IAsyncLifetime
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        gateway.Replicas.Answer = ScriptedInferenceClient.Echo;
        await gateway.WaitForModelsAsync();
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static NamedTensor Floats(string name, long[] shape, params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return new NamedTensor(name, TensorDataType.FP32, shape, bytes);
    }

    [Fact]
    public async Task Open_inference_json_reaches_the_replica_as_raw_tensors_and_tensors_come_back_as_json()
    {
        using var client = gateway.Inference();
        gateway.Replicas.Answer = (_, _) => Task.FromResult<InferenceReply>(new InferenceSucceeded("r",
            new TensorOutput([Floats("output__0", [1, 2], 1.5f, -2f), new NamedTensor("output__1", TensorDataType.INT64, [1], BitConverter.GetBytes(7L))]),
            new InferenceTiming(11, 22, 2, "addsub/1.0/0", "cpu:0")));

        using var response = await client.PostAsync("/v2/models/addsub/infer", Json.Body("""
            {"id": "q", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [[3, 4]]},
                                   {"name": "y", "shape": [2], "datatype": "INT32", "data": [5, 6]}]}
            """), Token);

        var sent = Assert.IsType<TensorInput>(gateway.Replicas.Last.Input);
        Assert.Equal("addsub", gateway.Replicas.Last.Model);
        Assert.Equal(Floats("x", [1, 2], 3, 4).Data, sent.Tensors[0].Data);
        Assert.Equal([1L, 2L], sent.Tensors[0].Shape);
        Assert.Equal((TensorDataType.INT32, "y"), (sent.Tensors[1].DataType, sent.Tensors[1].Name));
        Assert.Equal([5, 0, 0, 0, 6, 0, 0, 0], sent.Tensors[1].Data);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("addsub/1.0/0", response.Headers.GetValues("x-serve-replica").Single());
        Assert.Equal("22", response.Headers.GetValues("x-serve-device-us").Single());
        var body = await Json.ReadAsync(response);
        Assert.Equal("q", body.GetProperty("id").GetString());
        var outputs = body.GetProperty("outputs");
        Assert.Equal(["output__0", "output__1"], outputs.EnumerateArray().Select(o => o.GetProperty("name").GetString()));
        Assert.Equal("[1.5,-2]", outputs[0].GetProperty("data").GetRawText());
        Assert.Equal("INT64", outputs[1].GetProperty("datatype").GetString());
        Assert.Equal("[7]", outputs[1].GetProperty("data").GetRawText());
    }

    [Theory]
    [InlineData(false, "[[[1.5,-2]],[7]]")]
    [InlineData(true, """{"outputs":[{"name":"output__0","datatype":"FP32","shape":[1,2],"data":[1.5,-2]},{"name":"output__1","datatype":"INT64","shape":[1],"data":[7]}]}""")]
    public async Task Tensors_on_torchserves_endpoint_come_back_as_nested_lists_or_named_outputs_when_the_inputs_were_named(bool named, string expected)
    {
        using var client = gateway.Inference();
        var tensors = new TensorOutput([Floats("output__0", [1, 2], 1.5f, -2f), new NamedTensor("output__1", TensorDataType.INT64, [1], BitConverter.GetBytes(7L))])
        {
            NamedInputs = named,
        };
        gateway.Replicas.Answer = (_, _) => Task.FromResult<InferenceReply>(
            new InferenceSucceeded("r", tensors, new InferenceTiming(1, 2, 1, "echo/1.0/0", "cpu:0")));

        using var response = await client.PostAsync("/predictions/echo", Json.Body("[1]"), Token);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(expected, await response.Content.ReadAsStringAsync(Token));
    }

    [Fact]
    public async Task A_torchserve_body_and_form_fields_reach_the_replica_as_named_parts_and_a_document_comes_back_as_it_is()
    {
        using var client = gateway.Inference();
        using var raw = new ByteArrayContent([1, 2, 3]);
        raw.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        using var rawAnswer = await client.PostAsync("/predictions/echo", raw, Token);
        var body = Assert.IsType<RawInput>(gateway.Replicas.Last.Input);
        Assert.Equal(("body", "image/png"), (body.Parts.Single().Name, body.Parts.Single().ContentType));
        Assert.Equal([1, 2, 3], await rawAnswer.Content.ReadAsByteArrayAsync(Token));

        using var form = new MultipartFormDataContent { { new StringContent("hello"), "data" }, { new StringContent("more"), "extra" } };
        using var formAnswer = await client.PostAsync("/predictions/echo", form, Token);
        var fields = Assert.IsType<RawInput>(gateway.Replicas.Last.Input);
        Assert.Equal(["data", "extra"], fields.Parts.Select(p => p.Name));
        Assert.Equal("hello", await formAnswer.Content.ReadAsStringAsync(Token));
    }

    [Fact]
    public async Task Grpc_raw_and_typed_contents_reach_the_replica_as_the_same_bytes_and_answer_in_kind()
    {
        var oip = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.GrpcInference());
        var raw = new ModelInferRequest { ModelName = "echo" };
        raw.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "FP32", Shape = { 2 } });
        raw.RawInputContents.Add(ByteString.CopyFrom(Floats("x", [2], 1, 2).Data));
        var rawAnswer = await oip.ModelInferAsync(raw, cancellationToken: Token);
        Assert.Equal(Floats("x", [2], 1, 2).Data, Assert.IsType<TensorInput>(gateway.Replicas.Last.Input).Tensors[0].Data);
        Assert.Equal(Floats("x", [2], 1, 2).Data, rawAnswer.RawOutputContents.Single().ToByteArray());

        var typed = new ModelInferRequest { ModelName = "echo" };
        typed.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "x", Datatype = "FP32", Shape = { 2 }, Contents = new InferTensorContents { Fp32Contents = { 1, 2 } },
        });
        var typedAnswer = await oip.ModelInferAsync(typed, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Token);
        Assert.Equal(Floats("x", [2], 1, 2).Data, Assert.IsType<TensorInput>(gateway.Replicas.Last.Input).Tensors[0].Data);
        Assert.Equal([1f, 2f], typedAnswer.Outputs.Single().Contents.Fp32Contents);
        Assert.NotNull(gateway.Replicas.Last.Deadline);
    }

    public static TheoryData<ServeErrorKind, HttpStatusCode, StatusCode> Failures() => new()
    {
        { ServeErrorKind.BadInput, HttpStatusCode.BadRequest, StatusCode.InvalidArgument },
        { ServeErrorKind.Overloaded, HttpStatusCode.ServiceUnavailable, StatusCode.Unavailable },
        { ServeErrorKind.DeadlineExceeded, HttpStatusCode.GatewayTimeout, StatusCode.DeadlineExceeded },
        { ServeErrorKind.ModelFailed, HttpStatusCode.InternalServerError, StatusCode.Internal },
        { ServeErrorKind.ResourceExhausted, (HttpStatusCode)507, StatusCode.ResourceExhausted },
        { ServeErrorKind.PayloadTooLarge, HttpStatusCode.RequestEntityTooLarge, StatusCode.ResourceExhausted },
        { ServeErrorKind.QuotaExceeded, HttpStatusCode.TooManyRequests, StatusCode.ResourceExhausted },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public async Task A_replicas_failure_is_told_with_the_error_tables_status_in_each_protocol(ServeErrorKind kind, HttpStatusCode http, StatusCode grpc)
    {
        gateway.Replicas.Answer = (_, _) => Task.FromResult<InferenceReply>(new InferenceFailed("r", new ServeError(kind, $"the replica says {kind}")));
        using var client = gateway.Inference();

        using var torchServe = await client.PostAsync("/predictions/echo", Json.Body("[1]"), Token);
        Assert.Equal(http, torchServe.StatusCode);
        var torchServeError = await Json.ReadAsync(torchServe);
        Assert.Equal((int)http, torchServeError.GetProperty("code").GetInt32());
        Assert.Equal($"the replica says {kind}", torchServeError.GetProperty("message").GetString());
        Assert.Equal(kind == ServeErrorKind.QuotaExceeded, torchServe.Headers.RetryAfter is not null);

        using var oip = await client.PostAsync("/v2/models/echo/infer", Json.Body("""{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}"""), Token);
        Assert.Equal(http, oip.StatusCode);
        Assert.Equal($"the replica says {kind}", (await Json.ReadAsync(oip)).GetProperty("error").GetString());

        var predictions = new InferenceAPIsService.InferenceAPIsServiceClient(gateway.GrpcInference());
        var failed = await Assert.ThrowsAsync<RpcException>(() => predictions.PredictionsAsync(
            new PredictionsRequest { ModelName = "echo", Input = { ["data"] = ByteString.CopyFromUtf8("[1]") } }, cancellationToken: Token).ResponseAsync);
        Assert.Equal((grpc, $"the replica says {kind}"), (failed.StatusCode, failed.Status.Detail));
    }

    [Fact]
    public async Task An_answer_over_max_response_size_is_refused_by_the_gateway_in_every_protocol()
    {
        var large = new byte[150_000];
        gateway.Replicas.Answer = (_, _) => Task.FromResult<InferenceReply>(new InferenceSucceeded("r",
            new DocumentOutput("application/octet-stream", large), new InferenceTiming(1, 1, 1, "echo/1.0/0", "cpu:0")));
        using var client = gateway.Inference();

        using var http = await client.PostAsync("/predictions/echo", Json.Body("[1]"), Token);
        Assert.Equal((HttpStatusCode)507, http.StatusCode);
        Assert.Contains("more than max_response_size (100000 bytes)", (await Json.ReadAsync(http)).GetProperty("message").GetString());

        var predictions = new InferenceAPIsService.InferenceAPIsServiceClient(gateway.GrpcInference());
        var grpc = await Assert.ThrowsAsync<RpcException>(() => predictions.PredictionsAsync(
            new PredictionsRequest { ModelName = "echo", Input = { ["data"] = ByteString.CopyFromUtf8("[1]") } }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, grpc.StatusCode);
    }

    [Fact]
    public async Task Every_protocol_words_a_too_large_answer_the_same()
    {
        gateway.Replicas.Answer = (_, _) => Task.FromResult<InferenceReply>(new InferenceSucceeded("r",
            new TensorOutput([new NamedTensor("y", TensorDataType.UINT8, [150_000], new byte[150_000])]),
            new InferenceTiming(1, 1, 1, "echo/1.0/0", "cpu:0")));
        const string expected = "more than max_response_size (100000 bytes)";
        using var client = gateway.Inference();

        using var rest = await client.PostAsync("/v2/models/echo/infer",
            Json.Body("""{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}"""), Token);
        Assert.Equal((HttpStatusCode)507, rest.StatusCode);
        Assert.Contains(expected, (await Json.ReadAsync(rest)).GetProperty("error").GetString());

        var oip = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.GrpcInference());
        var request = new ModelInferRequest { ModelName = "echo" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "x", Datatype = "FP32", Shape = { 1 }, Contents = new InferTensorContents { Fp32Contents = { 1 } },
        });
        var grpc = await Assert.ThrowsAsync<RpcException>(() => oip.ModelInferAsync(request, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, grpc.StatusCode);
        Assert.StartsWith("The response is ", grpc.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(expected, grpc.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_version_the_lookup_resolved_is_the_one_the_replica_is_asked_for()
    {
        using var client = gateway.Inference();
        using var byDefault = await client.PostAsync("/predictions/echo", Json.Body("[1]"), Token);
        Assert.Equal(HttpStatusCode.OK, byDefault.StatusCode);
        Assert.Equal(("echo", "1.0"), (gateway.Replicas.Last.Model, gateway.Replicas.Last.Version));

        using var named = await client.PostAsync("/predictions/echo/1.0", Json.Body("[1]"), Token);
        Assert.Equal(HttpStatusCode.OK, named.StatusCode);
        Assert.Equal("1.0", gateway.Replicas.Last.Version);
    }

    [Fact]
    public async Task An_unknown_version_gets_torchserves_message_in_every_protocol_and_no_replica_is_asked()
    {
        const string expected = "Model version: 9.9 does not exist for model: echo";
        var before = gateway.Replicas.Calls.Count;
        using var client = gateway.Inference();

        using var http = await client.PostAsync("/predictions/echo/9.9", Json.Body("[1]"), Token);
        Assert.Equal((HttpStatusCode.NotFound, expected), (http.StatusCode, (await Json.ReadAsync(http)).GetProperty("message").GetString()));

        using var rest = await client.PostAsync("/v2/models/echo/versions/9.9/infer",
            Json.Body("""{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}"""), Token);
        Assert.Equal((HttpStatusCode.NotFound, expected), (rest.StatusCode, (await Json.ReadAsync(rest)).GetProperty("error").GetString()));

        var predictions = new InferenceAPIsService.InferenceAPIsServiceClient(gateway.GrpcInference());
        var torchServe = await Assert.ThrowsAsync<RpcException>(() => predictions.PredictionsAsync(new PredictionsRequest
        {
            ModelName = "echo", ModelVersion = "9.9", Input = { ["data"] = ByteString.CopyFromUtf8("[1]") },
        }, cancellationToken: Token).ResponseAsync);
        Assert.Equal((StatusCode.NotFound, expected), (torchServe.StatusCode, torchServe.Status.Detail));

        var oip = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.GrpcInference());
        var request = new ModelInferRequest { ModelName = "echo", ModelVersion = "9.9" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "x", Datatype = "FP32", Shape = { 1 }, Contents = new InferTensorContents { Fp32Contents = { 1 } },
        });
        var kserve = await Assert.ThrowsAsync<RpcException>(() => oip.ModelInferAsync(request, cancellationToken: Token).ResponseAsync);
        Assert.Equal((StatusCode.NotFound, expected), (kserve.StatusCode, kserve.Status.Detail));
        Assert.Equal(before, gateway.Replicas.Calls.Count);
    }

    [Fact]
    public async Task An_unknown_model_is_refused_before_any_replica_is_asked()
    {
        var before = gateway.Replicas.Calls.Count;
        using var client = gateway.Inference();
        using var response = await client.PostAsync("/predictions/nope", Json.Body("[1]"), Token);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("Model not found: nope", (await Json.ReadAsync(response)).GetProperty("message").GetString());
        Assert.Equal(before, gateway.Replicas.Calls.Count);
    }

    [Fact]
    public async Task A_client_that_goes_away_cancels_the_replicas_call()
    {
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gateway.Replicas.Answer = async (_, cancellation) =>
        {
            await using var registration = cancellation.Register(() => cancelled.TrySetResult());
            reached.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellation);
            throw new InvalidOperationException("unreachable");
        };
        using var client = gateway.Inference();
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var request = client.PostAsync("/predictions/echo", new StringContent("[1]", Encoding.UTF8, "application/json"), abandon.Token);
        // This call, not an earlier test's call to the same model: the replica's answer has started.
        await reached.Task.WaitAsync(TimeSpan.FromSeconds(10), Token);
        Assert.False(cancelled.Task.IsCompleted);

        await abandon.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10), Token);
    }

    [Fact]
    public void The_catalog_is_the_registrys_and_not_a_fake()
    {
        var catalog = gateway.Services.GetService(typeof(Serve.Actors.Registry.CatalogView)) as Serve.Actors.Registry.CatalogView;
        Assert.NotNull(catalog);
        Assert.Equal(["addsub", "echo"], catalog.Current.Entries.Select(e => e.Definition.Name).Order(StringComparer.Ordinal));
    }
}
