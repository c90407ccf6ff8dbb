using System.Net;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Serve.Gateway.Grpc.TorchServe;
using Serve.Gateway.Grpc.Oip;

namespace Serve.Standalone.Tests;

/// <summary>
/// Inputs bind to the model's inputs by name over every protocol, and every output comes back under its
/// own name. <c>addsub</c> is <c>forward(x, y) = (x + y, x - y)</c>: inputs bound by position in the
/// order sent would answer <c>y - x</c> as <c>output__1</c>.
/// </summary>
public sealed class InputBindingApiTests(ServeFactory serve) : IClassFixture<ServeFactory>, IAsyncLifetime
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => await serve.WaitReadyAsync("linrelu", "addsub");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private const string ReversedJsonInputs = """
        [{"name": "y", "shape": [2], "datatype": "FP32", "data": [1, 2]},
         {"name": "x", "shape": [2], "datatype": "FP32", "data": [10, 20]}]
        """;

    private static void AssertSumAndDifference(JsonElement outputs)
    {
        Assert.Equal(2, outputs.GetArrayLength());
        Assert.Equal("output__0", outputs[0].GetProperty("name").GetString());
        Assert.Equal([11f, 22f], outputs[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()));
        Assert.Equal("output__1", outputs[1].GetProperty("name").GetString());
        Assert.Equal([9f, 18f], outputs[1].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()));
    }

    [Fact]
    public async Task Rest_json_inputs_in_another_order_bind_by_name()
    {
        using var client = serve.Inference();
        using var response = await client.PostAsync("/v2/models/addsub/infer", Json.Body($$"""{"inputs": {{ReversedJsonInputs}}}"""), Token);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertSumAndDifference((await Json.ReadAsync(response)).GetProperty("outputs"));
    }

    [Fact]
    public async Task Rest_binary_inputs_in_another_order_bind_by_name()
    {
        var header = System.Text.Encoding.UTF8.GetBytes("""
            {"inputs": [{"name": "y", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
                        {"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}
            """);
        using var content = new ByteArrayContent([.. header, .. Bytes(1, 2), .. Bytes(10, 20)]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", header.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var client = serve.Inference();
        using var response = await client.PostAsync("/v2/models/addsub/infer", content, Token);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertSumAndDifference((await Json.ReadAsync(response)).GetProperty("outputs"));
    }

    [Fact]
    public async Task An_open_inference_body_on_torchserves_endpoints_binds_by_name()
    {
        var body = $$"""{"inputs": {{ReversedJsonInputs}}}""";
        using var client = serve.Inference();
        using var http = await client.PostAsync("/predictions/addsub", Json.Body(body), Token);
        Assert.Equal(HttpStatusCode.OK, http.StatusCode);
        AssertSumAndDifference((await Json.ReadAsync(http)).GetProperty("outputs"));

        var request = new PredictionsRequest { ModelName = "addsub" };
        request.Input.Add("data", ByteString.CopyFromUtf8(body));
        var grpc = await new InferenceAPIsService.InferenceAPIsServiceClient(serve.GrpcInference()).PredictionsAsync(request, cancellationToken: Token);
        AssertSumAndDifference(JsonDocument.Parse(grpc.Prediction.ToByteArray()).RootElement.GetProperty("outputs"));
    }

    [Fact]
    public async Task Grpc_typed_inputs_in_another_order_bind_by_name()
    {
        var request = new ModelInferRequest { ModelName = "addsub" };
        request.Inputs.Add(Typed("y", 1, 2));
        request.Inputs.Add(Typed("x", 10, 20));

        var response = await Oip().ModelInferAsync(request, cancellationToken: Token);

        Assert.Equal(["output__0", "output__1"], response.Outputs.Select(o => o.Name));
        Assert.Equal([11f, 22f], response.Outputs[0].Contents.Fp32Contents);
        Assert.Equal([9f, 18f], response.Outputs[1].Contents.Fp32Contents);
    }

    [Fact]
    public async Task Grpc_raw_inputs_in_another_order_bind_by_name()
    {
        var request = new ModelInferRequest { ModelName = "addsub" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "y", Datatype = "FP32", Shape = { 2 } });
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "FP32", Shape = { 2 } });
        request.RawInputContents.Add(ByteString.CopyFrom(Bytes(1, 2)));
        request.RawInputContents.Add(ByteString.CopyFrom(Bytes(10, 20)));

        var response = await Oip().ModelInferAsync(request, cancellationToken: Token);

        Assert.Equal(["output__0", "output__1"], response.Outputs.Select(o => o.Name));
        Assert.Equal(Bytes(11, 22), response.RawOutputContents[0].ToByteArray());
        Assert.Equal(Bytes(9, 18), response.RawOutputContents[1].ToByteArray());
    }

    [Fact]
    public async Task Metadata_names_the_inputs_as_forward_declares_them()
    {
        using var client = serve.Inference();
        var addSub = await Json.ReadAsync(await client.GetAsync("/v2/models/addsub", Token));
        Assert.Equal(["x", "y"], addSub.GetProperty("inputs").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        var linRelu = await Json.ReadAsync(await client.GetAsync("/v2/models/linrelu", Token));
        Assert.Equal(["input"], linRelu.GetProperty("inputs").EnumerateArray().Select(i => i.GetProperty("name").GetString()));

        var grpc = await Oip().ModelMetadataAsync(new ModelMetadataRequest { Name = "addsub" }, cancellationToken: Token);
        Assert.Equal(["x", "y"], grpc.Inputs.Select(i => i.Name));
    }

    [Theory]
    [InlineData("addsub", """[{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}, {"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]""",
        "The model has no input 'z'; the model's inputs are 'x', 'y'")]
    [InlineData("linrelu", """[{"name": "input__0", "shape": [1, 10], "datatype": "FP32", "data": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}]""",
        "The model has no input 'input__0'; the model's input is 'input'")]
    [InlineData("addsub", """[{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]""",
        "Input 'y' is missing; the model's inputs are 'x', 'y'")]
    [InlineData("addsub", """[{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}, {"name": "x", "shape": [1], "datatype": "FP32", "data": [2]}]""",
        "input 'x' appears more than once")]
    public async Task Unknown_missing_and_repeated_names_are_refused_over_rest_and_grpc(string model, string inputs, string expected)
    {
        using var client = serve.Inference();
        using var rest = await client.PostAsync($"/v2/models/{model}/infer", Json.Body($$"""{"inputs": {{inputs}}}"""), Token);
        Assert.Equal(HttpStatusCode.BadRequest, rest.StatusCode);
        Assert.Contains(expected, (await Json.ReadAsync(rest)).GetProperty("error").GetString());

        var request = new ModelInferRequest { ModelName = model };
        foreach (var input in JsonDocument.Parse(inputs).RootElement.EnumerateArray())
        {
            var tensor = Typed(input.GetProperty("name").GetString()!, [.. input.GetProperty("data").EnumerateArray().Select(v => v.GetSingle())]);
            tensor.Shape.Clear();
            tensor.Shape.Add(input.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
            request.Inputs.Add(tensor);
        }

        var grpc = await Assert.ThrowsAsync<RpcException>(() => Oip().ModelInferAsync(request, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, grpc.StatusCode);
        Assert.Contains(expected, grpc.Status.Detail);
    }

    private GRPCInferenceService.GRPCInferenceServiceClient Oip() => new(serve.GrpcInference());

    private static ModelInferRequest.Types.InferInputTensor Typed(string name, params float[] values) => new()
    {
        Name = name, Datatype = "FP32", Shape = { values.Length }, Contents = new InferTensorContents { Fp32Contents = { values } },
    };

    private static byte[] Bytes(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }
}
