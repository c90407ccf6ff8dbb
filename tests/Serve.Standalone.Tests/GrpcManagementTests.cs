using System.Net;
using System.Text.Json;
using Grpc.Core;
using Serve.Gateway.Grpc.Management;
using Serve.Gateway.Grpc.Oip;

namespace Serve.Standalone.Tests;

/// <summary>
/// TorchServe's gRPC management service (the HTTP management API's rules, the same JSON in msg) and
/// deadlines on gRPC inference, against the real standalone server in memory.
/// </summary>
public sealed class GrpcManagementTests(GrpcManagementTests.Factory serve) : IClassFixture<GrpcManagementTests.Factory>, IAsyncLifetime
{
    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            // "batched" waits up to 3 s for a second request: a lone request sits in its queue that long.
            new("Serve:LoadModels", "linrelu=linrelu.pt,batched=identity.pt?batch_size=2&max_batch_delay=3000"),
            new("Serve:EnableModelApi", "true"),
        ];
    }

    public async ValueTask InitializeAsync() => await serve.WaitReadyAsync("linrelu", "batched");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private ManagementAPIsService.ManagementAPIsServiceClient Management() => new(serve.GrpcManagement());

    [Fact]
    public async Task Describe_and_list_answer_the_http_apis_json()
    {
        var client = Management();
        var described = JsonDocument.Parse((await client.DescribeModelAsync(new DescribeModelRequest { ModelName = "linrelu" }, cancellationToken: Token)).Msg).RootElement;
        var (status, http) = await serve.ManageAsync(HttpMethod.Get, "/models/linrelu");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(http[0].GetProperty("modelName").GetString(), described[0].GetProperty("modelName").GetString());
        Assert.Equal(http[0].GetProperty("batchSize").GetInt32(), described[0].GetProperty("batchSize").GetInt32());
        Assert.Equal("READY", described[0].GetProperty("workers")[0].GetProperty("status").GetString());

        var listed = JsonDocument.Parse((await client.ListModelsAsync(new ListModelsRequest { Limit = 1 }, cancellationToken: Token)).Msg).RootElement;
        Assert.Single(listed.GetProperty("models").EnumerateArray());
        Assert.Equal("1", listed.GetProperty("nextPageToken").GetString());
        var rest = JsonDocument.Parse((await client.ListModelsAsync(new ListModelsRequest { NextPageToken = 1 }, cancellationToken: Token)).Msg).RootElement;
        Assert.False(rest.TryGetProperty("nextPageToken", out _));

        var missing = await Assert.ThrowsAsync<RpcException>(() => client.DescribeModelAsync(new DescribeModelRequest { ModelName = "nope" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        Assert.Contains("Model not found: nope", missing.Status.Detail);
    }

    [Fact]
    public async Task Register_scale_set_default_and_unregister_follow_the_http_rules()
    {
        var client = Management();
        var registered = await client.RegisterModelAsync(new RegisterModelRequest
        {
            Url = "identity.pt", ModelName = "viagrpc", InitialWorkers = 1, Synchronous = true,
        }, cancellationToken: Token);
        Assert.Equal("Model \"viagrpc\" Version: 1.0 registered with 1 initial workers", Status(registered));

        var again = await Assert.ThrowsAsync<RpcException>(() => client.RegisterModelAsync(new RegisterModelRequest
        {
            Url = "identity.pt", ModelName = "viagrpc",
        }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.AlreadyExists, again.StatusCode);

        var badRuntime = await Assert.ThrowsAsync<RpcException>(() => client.RegisterModelAsync(new RegisterModelRequest
        {
            Url = "identity.pt", ModelName = "badruntime", Runtime = "python4",
        }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badRuntime.StatusCode);
        Assert.Equal("Invalid RuntimeType value: python4", badRuntime.Status.Detail);

        var noUrl = await Assert.ThrowsAsync<RpcException>(() => client.RegisterModelAsync(new RegisterModelRequest(), cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noUrl.StatusCode);
        Assert.Contains("Parameter url is required.", noUrl.Status.Detail);

        // Served at once, over gRPC too.
        var request = new ModelInferRequest { ModelName = "viagrpc" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "x", Datatype = "FP32", Shape = { 2 }, Contents = new InferTensorContents { Fp32Contents = { 4, 5 } },
        });
        var answer = await new GRPCInferenceService.GRPCInferenceServiceClient(serve.GrpcInference()).ModelInferAsync(request, cancellationToken: Token);
        Assert.Equal([4f, 5f], answer.Outputs.Single().Contents.Fp32Contents);

        var badScale = await Assert.ThrowsAsync<RpcException>(() => client.ScaleWorkerAsync(new ScaleWorkerRequest
        {
            ModelName = "viagrpc", MinWorker = 3, MaxWorker = 2,
        }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badScale.StatusCode);
        Assert.Contains("max_worker cannot be less than min_worker.", badScale.Status.Detail);

        var scaled = await client.ScaleWorkerAsync(new ScaleWorkerRequest { ModelName = "viagrpc", MinWorker = 2 }, cancellationToken: Token);
        Assert.Equal("Processing worker updates...", Status(scaled));

        var setDefault = await client.SetDefaultAsync(new SetDefaultRequest { ModelName = "viagrpc", ModelVersion = "1.0" }, cancellationToken: Token);
        Assert.Contains("Default version successfully updated for model \"viagrpc\" to \"1.0\"", Status(setDefault));
        var unknownVersion = await Assert.ThrowsAsync<RpcException>(() => client.SetDefaultAsync(new SetDefaultRequest
        {
            ModelName = "viagrpc", ModelVersion = "9.9",
        }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknownVersion.StatusCode);

        var unregistered = await client.UnregisterModelAsync(new UnregisterModelRequest { ModelName = "viagrpc" }, cancellationToken: Token);
        Assert.Equal("Model \"viagrpc\" unregistered", Status(unregistered));
        var gone = await Assert.ThrowsAsync<RpcException>(() => client.UnregisterModelAsync(new UnregisterModelRequest { ModelName = "viagrpc" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task A_deadline_that_passes_while_queued_drops_the_request_before_it_runs()
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(serve.GrpcInference());
        var expired = await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(Batched(1),
            deadline: DateTime.UtcNow.AddMilliseconds(500), cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, expired.StatusCode);

        // Had the expired request stayed queued, this one would have filled the batch of two and run at
        // once, with it. It waits out the batch delay alone instead: the expired one never ran.
        var call = client.ModelInferAsync(Batched(2), cancellationToken: Token);
        var answer = await call;
        Assert.Equal([2f], answer.Outputs.Single().Contents.Fp32Contents);
        var headers = await call.ResponseHeadersAsync;
        Assert.Equal("1", headers.GetValue("x-serve-batch-size"));
        Assert.True(long.Parse(headers.GetValue("x-serve-queue-us")!, System.Globalization.CultureInfo.InvariantCulture) > 2_000_000,
            $"queued {headers.GetValue("x-serve-queue-us")} us: the batch formed before its delay, so the expired request was still queued");
    }

    private static ModelInferRequest Batched(float value)
    {
        var request = new ModelInferRequest { ModelName = "batched" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "x", Datatype = "FP32", Shape = { 1 }, Contents = new InferTensorContents { Fp32Contents = { value } },
        });
        return request;
    }

    private static string Status(ManagementResponse response) =>
        JsonDocument.Parse(response.Msg).RootElement.GetProperty("status").GetString()!;
}
