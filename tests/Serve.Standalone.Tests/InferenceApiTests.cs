using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Serve.Standalone.Tests;

/// <summary>TorchServe's inference API against the real standalone server, in memory.</summary>
public sealed class InferenceApiTests(ServeFactory serve) : IClassFixture<ServeFactory>, IAsyncLifetime
{
    private const string Ones = TestModels.OnesJson;
    private static readonly float[] OnesResult = TestModels.LinReluOfOnes;

    public async ValueTask InitializeAsync() => await serve.WaitReadyAsync("linrelu", "identity", "resnet18");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static async Task AssertTorchServeError(HttpResponseMessage response, HttpStatusCode status, string type, string message)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = await Json.ReadAsync(response);
        Assert.Equal((int)status, body.GetProperty("code").GetInt32());
        Assert.Equal(type, body.GetProperty("type").GetString());
        Assert.Contains(message, body.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Ping_says_healthy()
    {
        using var client = serve.Inference();
        var response = await client.GetAsync("/ping", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", (await Json.ReadAsync(response)).GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("/predictions/linrelu")]
    [InlineData("/predictions/linrelu/1.0")]
    public async Task A_json_tensor_goes_through_libtorch_and_back(string path)
    {
        using var client = serve.Inference();
        var response = await client.PostAsync(path, Json.Body(Ones), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await Json.ReadAsync(response);
        Assert.Equal(OnesResult, body[0].EnumerateArray().Select(v => v.GetSingle()));
        Assert.StartsWith("linrelu/1.0/", response.Headers.GetValues("x-serve-replica").Single());
        Assert.Single(response.Headers.GetValues("x-request-id"));
    }

    [Fact]
    public async Task Curl_style_uploads_work_with_put_and_without_a_content_type()
    {
        using var client = serve.Inference();
        var put = await client.PutAsync("/predictions/linrelu", new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes(Ones)),
            TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        // curl -d sends JSON as a url-encoded form by default; the body is still the input.
        var form = new StringContent(Ones, System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/predictions/linrelu", form, TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task A_form_field_name_must_be_a_plain_name_without_a_trailing_newline()
    {
        using var client = serve.Inference();
        var field = new StringContent("data=" + Uri.EscapeDataString(Ones), System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/predictions/linrelu", field, TestContext.Current.CancellationToken)).StatusCode);

        // "data\n" is no field name: the body is not a form, and as the raw input it is not JSON.
        var newline = new StringContent("data%0A=" + Uri.EscapeDataString(Ones), System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");
        var refused = await client.PostAsync("/predictions/linrelu", newline, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("not valid JSON", await refused.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task An_image_gets_the_top_five_classes()
    {
        using var client = serve.Inference();
        var raw = new ByteArrayContent(Images.Jpeg());
        raw.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        var response = await client.PostAsync("/predictions/resnet18", raw, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(5, (await Json.ReadAsync(response)).EnumerateObject().Count());

        using var multipart = new MultipartFormDataContent { { new ByteArrayContent(Images.Png()), "data", "kitten.png" } };
        var upload = await client.PostAsync("/predictions/resnet18", multipart, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, upload.StatusCode);
        Assert.Equal(5, (await Json.ReadAsync(upload)).EnumerateObject().Count());
    }

    [Fact]
    public async Task A_base64_image_sent_with_curl_d_is_the_body_not_a_form()
    {
        using var client = serve.Inference();
        var base64 = new StringContent(Convert.ToBase64String(Images.Png()), System.Text.Encoding.ASCII, "application/x-www-form-urlencoded");
        var response = await client.PostAsync("/predictions/resnet18", base64, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(5, (await Json.ReadAsync(response)).EnumerateObject().Count());
    }

    [Fact]
    public async Task Unknown_models_and_versions_are_404_with_torchserve_messages()
    {
        using var client = serve.Inference();
        await AssertTorchServeError(await client.PostAsync("/predictions/nope", Json.Body(Ones), TestContext.Current.CancellationToken),
            HttpStatusCode.NotFound, "ModelNotFoundException", "Model not found: nope");
        await AssertTorchServeError(await client.PostAsync("/predictions/linrelu/9.9", Json.Body(Ones), TestContext.Current.CancellationToken),
            HttpStatusCode.NotFound, "ModelNotFoundException", "Model version: 9.9 does not exist for model: linrelu");
        await AssertTorchServeError(await client.GetAsync("/no/such/path", TestContext.Current.CancellationToken),
            HttpStatusCode.NotFound, "ResourceNotFoundException", "Requested resource is not found");
        await AssertTorchServeError(await client.DeleteAsync("/ping", TestContext.Current.CancellationToken),
            HttpStatusCode.MethodNotAllowed, "MethodNotAllowedException", "not allowed");
    }

    [Fact]
    public async Task Bad_input_gets_a_400_that_says_what_was_wrong_and_the_server_keeps_serving()
    {
        using var client = serve.Inference();
        var token = TestContext.Current.CancellationToken;
        await AssertTorchServeError(await client.PostAsync("/predictions/linrelu", Json.Body("[[1, 2"), token),
            HttpStatusCode.BadRequest, "BadRequestException", "not valid JSON");
        await AssertTorchServeError(await client.PostAsync("/predictions/linrelu", Json.Body("[[1,2,3]]"), token),
            HttpStatusCode.BadRequest, "BadRequestException", "shapes cannot be multiplied");
        await AssertTorchServeError(await client.PostAsync("/predictions/linrelu", Json.Body("[[1,2],[3]]"), token),
            HttpStatusCode.BadRequest, "BadRequestException", "not rectangular");
        await AssertTorchServeError(await client.PostAsync("/predictions/linrelu", new ByteArrayContent([]), token),
            HttpStatusCode.BadRequest, "BadRequestException", "body is empty");
        await AssertTorchServeError(await client.PostAsync("/predictions/resnet18", new ByteArrayContent("not an image"u8.ToArray()), token),
            HttpStatusCode.BadRequest, "BadRequestException", "not an image");
        await AssertTorchServeError(await client.PostAsync("/predictions/resnet18", new ByteArrayContent(Images.Jpeg()[..500]), token),
            HttpStatusCode.BadRequest, "BadRequestException", "truncated or corrupt");

        var good = await client.PostAsync("/predictions/linrelu", Json.Body(Ones), token);
        Assert.Equal(HttpStatusCode.OK, good.StatusCode);
    }

    [Fact]
    public async Task A_body_over_max_request_size_is_refused_with_413()
    {
        using var client = serve.Inference();
        var big = new ByteArrayContent(new byte[300_000]);
        await AssertTorchServeError(await client.PostAsync("/predictions/linrelu", big, TestContext.Current.CancellationToken),
            HttpStatusCode.RequestEntityTooLarge, "RequestTooLargeException", "max_request_size (200000 bytes)");

        var chunked = new StreamContent(new MemoryStream(new byte[300_000]));
        chunked.Headers.ContentLength = null;
        var response = await client.PostAsync("/predictions/linrelu", chunked, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task Inference_endpoints_do_not_answer_on_the_management_or_metrics_listeners()
    {
        using var management = serve.Management();
        using var metrics = serve.Metrics();
        var token = TestContext.Current.CancellationToken;
        Assert.Equal(HttpStatusCode.NotFound, (await management.PostAsync("/predictions/linrelu", Json.Body(Ones), token)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await metrics.GetAsync("/ping", token)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await management.GetAsync("/v2/health/live", token)).StatusCode);
    }

    [Fact]
    public async Task Concurrent_requests_are_batched_and_all_answered()
    {
        using var client = serve.Inference();
        var responses = await Task.WhenAll(Enumerable.Range(0, 48).Select(_ =>
            client.PostAsync("/predictions/linrelu", Json.Body(Ones), TestContext.Current.CancellationToken)));

        foreach (var response in responses.Where(r => r.StatusCode != HttpStatusCode.OK))
        {
            Assert.Fail($"{response.StatusCode}: {await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)}");
        }
        var batchSizes = responses.Select(r => int.Parse(r.Headers.GetValues("x-serve-batch-size").Single())).ToList();
        Assert.All(batchSizes, b => Assert.InRange(b, 1, 4));
        foreach (var response in responses)
        {
            Assert.Equal(OnesResult, (await Json.ReadAsync(response))[0].EnumerateArray().Select(v => v.GetSingle()));
        }
    }
}
