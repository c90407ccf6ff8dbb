using System.Net;
using System.Text.Json;

namespace Serve.Standalone.Tests;

/// <summary>The Open Inference Protocol's REST API against the real standalone server, in memory.</summary>
public sealed class OipApiTests(ServeFactory serve) : IClassFixture<ServeFactory>, IAsyncLifetime
{
    public async ValueTask InitializeAsync() => await serve.WaitReadyAsync("linrelu", "identity", "addsub", "resnet18");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private async Task<(HttpStatusCode Status, JsonElement Body)> InferAsync(string model, string body)
    {
        using var client = serve.Inference();
        var response = await client.PostAsync($"/v2/models/{model}/infer", Json.Body(body), TestContext.Current.CancellationToken);
        return (response.StatusCode, await Json.ReadAsync(response));
    }

    [Fact]
    public async Task Health_and_server_metadata()
    {
        using var client = serve.Inference();
        var token = TestContext.Current.CancellationToken;
        Assert.True((await Json.ReadAsync(await client.GetAsync("/v2/health/live", token))).GetProperty("live").GetBoolean());
        Assert.True((await Json.ReadAsync(await client.GetAsync("/v2/health/ready", token))).GetProperty("ready").GetBoolean());
        var server = await Json.ReadAsync(await client.GetAsync("/v2", token));
        Assert.Equal("serve", server.GetProperty("name").GetString());
        Assert.False(string.IsNullOrEmpty(server.GetProperty("version").GetString()));
        Assert.Equal(JsonValueKind.Array, server.GetProperty("extensions").ValueKind);
    }

    [Fact]
    public async Task Model_metadata_and_readiness()
    {
        using var client = serve.Inference();
        var token = TestContext.Current.CancellationToken;
        foreach (var path in new[] { "/v2/models/addsub", "/v2/models/addsub/versions/1.0" })
        {
            var metadata = await Json.ReadAsync(await client.GetAsync(path, token));
            Assert.Equal("addsub", metadata.GetProperty("name").GetString());
            Assert.Equal(["1.0"], metadata.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
            Assert.Equal("pytorch_torchscript", metadata.GetProperty("platform").GetString());
            Assert.Equal(2, metadata.GetProperty("inputs").GetArrayLength());
            var input = metadata.GetProperty("inputs")[0];
            Assert.Equal("x", input.GetProperty("name").GetString());
            Assert.Equal("FP32", input.GetProperty("datatype").GetString());
            Assert.Equal(JsonValueKind.Array, input.GetProperty("shape").ValueKind);
        }

        var ready = await client.GetAsync("/v2/models/addsub/versions/1.0/ready", token);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.True((await Json.ReadAsync(ready)).GetProperty("ready").GetBoolean());

        var missing = await client.GetAsync("/v2/models/nope/ready", token);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("Model not found: nope", (await Json.ReadAsync(missing)).GetProperty("error").GetString());
    }

    [Fact]
    public async Task Inference_answers_in_the_specifications_shape()
    {
        var (status, body) = await InferAsync("linrelu", """
            {"id": "req-7", "inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32",
                                        "data": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}]}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("linrelu", body.GetProperty("model_name").GetString());
        Assert.Equal("1.0", body.GetProperty("model_version").GetString());
        Assert.Equal("req-7", body.GetProperty("id").GetString());
        var output = Assert.Single(body.GetProperty("outputs").EnumerateArray());
        Assert.Equal("output__0", output.GetProperty("name").GetString());
        Assert.Equal("FP32", output.GetProperty("datatype").GetString());
        Assert.Equal([1L, 6L], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal(TestModels.LinReluOfOnes, output.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()));
    }

    [Theory]
    [InlineData("FP32", "[1.5,-2.25]")]
    [InlineData("FP64", "[1.5,-2.25]")]
    [InlineData("INT32", "[7,-8]")]
    [InlineData("INT64", "[9007199254740993,-1]")]
    [InlineData("BOOL", "[true,false]")]
    [InlineData("INT8", "[-128,127]")]
    [InlineData("UINT8", "[0,255]")]
    public async Task Each_datatype_goes_through_libtorch_unchanged(string datatype, string data)
    {
        var (status, body) = await InferAsync("identity",
            $$"""{"inputs": [{"name": "x", "shape": [2], "datatype": "{{datatype}}", "data": {{data}}}]}""");

        Assert.Equal(HttpStatusCode.OK, status);
        var output = body.GetProperty("outputs")[0];
        Assert.Equal(datatype, output.GetProperty("datatype").GetString());
        Assert.Equal(data, output.GetProperty("data").GetRawText());
    }

    [Fact]
    public async Task Two_inputs_two_outputs_and_requested_outputs()
    {
        const string inputs = """
            [{"name": "x", "shape": [2], "datatype": "FP32", "data": [5, 6]},
             {"name": "y", "shape": [2], "datatype": "FP32", "data": [1, 2]}]
            """;
        var (_, both) = await InferAsync("addsub", $$"""{"inputs": {{inputs}}}""");
        Assert.Equal(2, both.GetProperty("outputs").GetArrayLength());

        var (status, one) = await InferAsync("addsub", $$"""{"inputs": {{inputs}}, "outputs": [{"name": "output__1"}]}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var output = Assert.Single(one.GetProperty("outputs").EnumerateArray());
        Assert.Equal("output__1", output.GetProperty("name").GetString());
        Assert.Equal([4f, 4f], output.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()));
    }

    [Fact]
    public async Task Images_as_bytes_to_the_classifier()
    {
        var image = Convert.ToBase64String(Images.Jpeg());
        var (status, body) = await InferAsync("resnet18",
            $$"""{"inputs": [{"name": "data", "shape": [1], "datatype": "BYTES", "data": ["{{image}}"]}]}""");

        Assert.Equal(HttpStatusCode.OK, status);
        var output = body.GetProperty("outputs")[0];
        Assert.Equal("BYTES", output.GetProperty("datatype").GetString());
        var top5 = JsonDocument.Parse(output.GetProperty("data")[0].GetString()!).RootElement;
        Assert.Equal(5, top5.EnumerateObject().Count());
    }

    [Theory]
    [InlineData("linrelu", "{\"inputs\": [", "not valid JSON")]
    [InlineData("linrelu", "{\"inputs\": []}", "must not be empty")]
    [InlineData("linrelu", """{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": ["a","b","c","d","e","f","g","h","i","j"]}]}""", "needs a number")]
    [InlineData("linrelu", """{"inputs": [{"name": "input", "shape": [2, 10], "datatype": "FP32", "data": [1, 2, 3]}]}""", "needs 20 elements")]
    [InlineData("linrelu", """{"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}""", "shapes cannot be multiplied")]
    [InlineData("linrelu", """{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FLOAT32", "data": [1]}]}""", "needs a 'datatype'")]
    [InlineData("linrelu", """{"inputs": [{"name": "input", "shape": [100000000, 100000000], "datatype": "FP32", "data": [1]}]}""", "more than the allowed")]
    [InlineData("identity", """{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}""", "BYTES is not supported")]
    [InlineData("addsub", """{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}, {"name": "y", "shape": [2], "datatype": "FP32", "data": [1, 2]}], "outputs": [{"name": "nope"}]}""", "Unknown output 'nope'")]
    [InlineData("addsub", """{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}""", "Input 'y' is missing; the model's inputs are 'x', 'y'")]
    public async Task Bad_requests_get_400_with_an_error_that_says_why(string model, string body, string expected)
    {
        var (status, error) = await InferAsync(model, body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(expected, error.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Unknown_models_and_versions_are_404()
    {
        using var client = serve.Inference();
        var token = TestContext.Current.CancellationToken;
        var body = """{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}""";
        var model = await client.PostAsync("/v2/models/nope/infer", Json.Body(body), token);
        Assert.Equal(HttpStatusCode.NotFound, model.StatusCode);
        Assert.Contains("Model not found: nope", (await Json.ReadAsync(model)).GetProperty("error").GetString());
        var version = await client.GetAsync("/v2/models/linrelu/versions/2.0", token);
        Assert.Equal(HttpStatusCode.NotFound, version.StatusCode);
    }

    /// <summary>The binary tensor extension: the JSON header, then the raw bytes its inputs claim.</summary>
    private async Task<HttpResponseMessage> InferBinaryAsync(string model, string json, byte[] binary, int? headerLength = null)
    {
        using var client = serve.Inference();
        var header = System.Text.Encoding.UTF8.GetBytes(json);
        var content = new ByteArrayContent([.. header, .. binary]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", (headerLength ?? header.Length).ToString(System.Globalization.CultureInfo.InvariantCulture));
        return await client.PostAsync($"/v2/models/{model}/infer", content, TestContext.Current.CancellationToken);
    }

    private static byte[] Bytes(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }

    private const string BinaryInputs = """
        [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
         {"name": "y", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]
        """;

    [Fact]
    public async Task Binary_inputs_with_json_outputs()
    {
        using var response = await InferBinaryAsync("addsub", $$"""{"inputs": {{BinaryInputs}}}""", [.. Bytes(5, 6), .. Bytes(1, 2)]);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("Inference-Header-Content-Length"));
        var outputs = (await Json.ReadAsync(response)).GetProperty("outputs");
        Assert.Equal([6f, 8f], outputs[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()));
        Assert.Equal([4f, 4f], outputs[1].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()));
    }

    [Fact]
    public async Task Outputs_asked_for_as_binary_follow_the_json_header()
    {
        var json = $$$"""{"inputs": {{{BinaryInputs}}}, "outputs": [{"name": "output__0"}, {"name": "output__1", "parameters": {"binary_data": true}}]}""";
        using var response = await InferBinaryAsync("addsub", json, [.. Bytes(5, 6), .. Bytes(1, 2)]);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        var headerLength = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single(), System.Globalization.CultureInfo.InvariantCulture);
        var body = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        var outputs = JsonDocument.Parse(body.AsMemory(0, headerLength)).RootElement.GetProperty("outputs");

        Assert.Equal([6f, 8f], outputs[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()));
        Assert.False(outputs[1].TryGetProperty("data", out _));
        Assert.Equal(8, outputs[1].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        Assert.Equal(Bytes(4, 4), body[headerLength..]);
    }

    [Fact]
    public async Task Binary_data_output_makes_every_output_binary_even_for_a_json_request()
    {
        using var client = serve.Inference();
        using var response = await client.PostAsync("/v2/models/addsub/infer", Json.Body("""
            {"parameters": {"binary_data_output": true},
             "inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [5, 6]},
                        {"name": "y", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}
            """), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var headerLength = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single(), System.Globalization.CultureInfo.InvariantCulture);
        var body = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        Assert.Equal([.. Bytes(6, 8), .. Bytes(4, 4)], body[headerLength..]);
    }

    [Theory]
    [InlineData(16, 0, 4, "binary_data_size is 8 but only 4 bytes")]
    [InlineData(16, 4, 0, "4 bytes of binary data follow the JSON but no input's binary_data_size claims them")]
    [InlineData(100_000, 0, 0, "Inference-Header-Content-Length must be a whole number of bytes")]
    public async Task Binary_requests_whose_sizes_do_not_add_up_get_400(int headerLength, int extra, int missing, string expected)
    {
        var json = $$"""{"inputs": {{BinaryInputs}}}""";
        var binary = new byte[16 + extra - missing];
        var length = headerLength == 16 ? (int?)null : headerLength;
        using var response = await InferBinaryAsync("addsub", json, binary, length);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, (await Json.ReadAsync(response)).GetProperty("error").GetString());
    }
}
