using System.Net;
using System.Text.Json;

namespace Serve.Standalone.Tests;

/// <summary>TorchServe's management API against the real standalone server, with the model API enabled.</summary>
public sealed class ManagementApiTests(ManagementApiTests.Factory serve) : IClassFixture<ManagementApiTests.Factory>
{
    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            new("Serve:LoadModels", "linrelu=linrelu.pt"),
            new("Serve:EnableModelApi", "true"),
        ];

        protected override void PrepareModelStore(string store) => TorchScriptWriter.ReadsHostFile(Path.Combine(store, "snoop.pt"));
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> Call(HttpClient client, HttpMethod method, string path, HttpContent? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body };
        using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);
        return (response.StatusCode, await Json.ReadAsync(response));
    }

    private static string Status(JsonElement body) => body.GetProperty("status").GetString()!;

    private static string Message(JsonElement body) => body.GetProperty("message").GetString()!;

    [Fact]
    public async Task Register_serve_describe_scale_and_unregister_a_model()
    {
        await serve.WaitReadyAsync("linrelu");
        using var management = serve.Management();
        using var inference = serve.Inference();

        var (status, body) = await Call(management, HttpMethod.Post, "/models?url=identity.pt&model_name=echo&initial_workers=1");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Model \"echo\" Version: 1.0 registered with 1 initial workers", Status(body));

        var predicted = await inference.PostAsync("/predictions/echo", Json.Body("[[1,2,3]]"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, predicted.StatusCode);
        Assert.Equal("[[1,2,3]]", await predicted.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));

        (status, body) = await Call(management, HttpMethod.Post, "/models?url=identity.pt&model_name=echo");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("Model version 1.0 is already registered for model echo", Message(body));

        (status, body) = await Call(management, HttpMethod.Get, "/models/echo");
        Assert.Equal(HttpStatusCode.OK, status);
        var described = Assert.Single(body.EnumerateArray());
        Assert.Equal("echo", described.GetProperty("modelName").GetString());
        Assert.Equal("identity.pt", described.GetProperty("modelUrl").GetString());
        var worker = Assert.Single(described.GetProperty("workers").EnumerateArray());
        Assert.Equal("READY", worker.GetProperty("status").GetString());
        Assert.Equal("cpu:0", worker.GetProperty("device").GetString());

        (status, body) = await Call(management, HttpMethod.Put, "/models/echo?min_worker=2&synchronous=true");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Workers scaled to 2 for model: echo", Status(body));
        (_, body) = await Call(management, HttpMethod.Get, "/models/echo/1.0");
        Assert.Equal(2, body[0].GetProperty("workers").GetArrayLength());

        (status, body) = await Call(management, HttpMethod.Put, "/models/echo?min_worker=3&max_worker=2");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("max_worker cannot be less than min_worker.", Message(body));

        (status, body) = await Call(management, HttpMethod.Put, "/models/echo?min_worker=two");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("min_worker must be an integer, not 'two'", Message(body));

        (status, body) = await Call(management, HttpMethod.Put, "/models/echo?min_worker=1");
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal("Processing worker updates...", Status(body));

        (status, body) = await Call(management, HttpMethod.Get, "/models");
        Assert.Equal(HttpStatusCode.OK, status);
        // Other tests in this class may have registered models of their own; the list is sorted by name.
        var listed = body.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("modelName").GetString()!).ToArray();
        Assert.Subset(listed.ToHashSet(), new HashSet<string> { "echo", "linrelu" });
        Assert.Equal(listed.Order(StringComparer.Ordinal), listed);

        (status, body) = await Call(management, HttpMethod.Delete, "/models/echo");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Model \"echo\" unregistered", Status(body));
        await Waiting.UntilAsync(async () => (await inference.PostAsync("/predictions/echo", Json.Body("[[1]]"))).StatusCode == HttpStatusCode.NotFound,
            TimeSpan.FromSeconds(10), "the unregistered model to disappear from the catalog");
    }

    [Fact]
    public async Task Versions_and_the_default_version()
    {
        using var management = serve.Management();
        Assert.Equal(HttpStatusCode.OK, (await Call(management, HttpMethod.Post, "/models?url=identity.pt&model_name=v&initial_workers=1")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Call(management, HttpMethod.Post, "/models?url=addsub.pt&model_name=v&model_version=2.0&initial_workers=1")).Status);

        var (status, body) = await Call(management, HttpMethod.Delete, "/models/v/1.0");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("Cannot remove default version for model v", Message(body));

        (status, body) = await Call(management, HttpMethod.Put, "/models/v/2.0/set-default");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Default version successfully updated for model \"v\" to \"2.0\"", Status(body));
        (_, body) = await Call(management, HttpMethod.Get, "/models/v/all");
        Assert.Equal(2, body.GetArrayLength());
        Assert.Equal(HttpStatusCode.OK, (await Call(management, HttpMethod.Delete, "/models/v/1.0")).Status);
        (status, _) = await Call(management, HttpMethod.Get, "/models/v/1.0");
        Assert.Equal(HttpStatusCode.NotFound, status);
    }

    [Theory]
    [InlineData("/models", HttpStatusCode.BadRequest, "Parameter url is required.")]
    [InlineData("/models?url=http://example.com/m.pt", HttpStatusCode.NotFound, "does not match any allowed URL(s)")]
    [InlineData("/models?url=../etc/m.pt", HttpStatusCode.NotFound, "Relative path is not allowed in url")]
    [InlineData("/models?url=missing.pt", HttpStatusCode.NotFound, "Model not found at: missing.pt")]
    [InlineData("/models?url=resnet.mar", HttpStatusCode.NotFound, "Model not found at: resnet.mar")]
    [InlineData("/models?url=model.onnx", HttpStatusCode.BadRequest, "is not a model Serve can load")]
    [InlineData("/models?url=identity.pt&model_name=-bad", HttpStatusCode.BadRequest, "model name '-bad' is invalid")]
    [InlineData("/models?url=identity.pt&batch_size=many", HttpStatusCode.BadRequest, "batch_size must be an integer")]
    [InlineData("/models?url=identity.pt&runtime=python4", HttpStatusCode.BadRequest, "Invalid RuntimeType value: python4")]
    [InlineData("/models?url=identity.pt&runtime=Python", HttpStatusCode.BadRequest, "Invalid RuntimeType value: Python")]
    [InlineData("/models?url=identity.pt&startup_timeout=-2", HttpStatusCode.BadRequest, "startup_timeout must be a number of seconds")]
    [InlineData("/models?url=identity.pt&model_name=echo%0A", HttpStatusCode.BadRequest, "model name 'echo\n' is invalid")]
    [InlineData("/models?url=identity.pt&model_name=nl&model_version=1.0%0A", HttpStatusCode.BadRequest, "model version '1.0\n' is invalid")]
    [InlineData("/models?url=identity.pt&synchronous=maybe", HttpStatusCode.BadRequest, "synchronous must be true or false, not 'maybe'")]
    [InlineData("/models?url=identity.pt&initial_workers=-1", HttpStatusCode.BadRequest, "replicas must be between 0 and 64, not -1")]
    [InlineData("/models?url=identity.pt&batch_size=0", HttpStatusCode.BadRequest, "batch_size must be between 1 and 1024, not 0")]
    [InlineData("/models?url=identity.pt&spread=yes", HttpStatusCode.BadRequest, "spread must be true or false, not 'yes'")]
    public async Task Bad_registrations_are_refused_with_torchserves_codes(string path, HttpStatusCode expected, string message)
    {
        using var management = serve.Management();
        var (status, body) = await Call(management, HttpMethod.Post, path);
        Assert.Equal(expected, status);
        Assert.Contains(message, Message(body));
    }

    [Theory]
    [InlineData("python")]
    [InlineData("python3")]
    [InlineData("LSP")]
    [InlineData("serve")]
    public async Task Torchserves_runtime_types_and_serves_own_register(string runtime)
    {
        using var management = serve.Management();
        var (status, body) = await Call(management, HttpMethod.Post, $"/models?url=identity.pt&model_name=rt-{runtime}&runtime={runtime}&initial_workers=0");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("registered with 0 initial workers", Status(body));
    }

    [Fact]
    public async Task A_synchronous_registration_not_ready_within_its_startup_timeout_is_undone_with_500()
    {
        await serve.WaitReadyAsync("linrelu");
        using var management = serve.Management();

        var (status, body) = await Call(management, HttpMethod.Post, "/models?url=identity.pt&model_name=late&initial_workers=1&startup_timeout=0");

        Assert.Equal(HttpStatusCode.InternalServerError, status);
        Assert.Equal("Failed to start workers for model late version: 1.0", Message(body));
        Assert.Equal(HttpStatusCode.NotFound, (await Call(management, HttpMethod.Get, "/models/late")).Status);

        // -1 is TorchServe's "not given": the default applies and the replica has time to start.
        (status, _) = await Call(management, HttpMethod.Post, "/models?url=identity.pt&model_name=late&initial_workers=1&startup_timeout=-1");
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task Torchserves_not_given_values_mean_the_defaults()
    {
        using var management = serve.Management();
        var (status, _) = await Call(management, HttpMethod.Post,
            "/models?url=identity.pt&model_name=sentinels&batch_size=-1&max_batch_delay=-100&response_timeout=-1&startup_timeout=-1&initial_workers=0");
        Assert.Equal(HttpStatusCode.OK, status);

        var (_, body) = await Call(management, HttpMethod.Get, "/models/sentinels");
        Assert.Equal(1, body[0].GetProperty("batchSize").GetInt32());
        Assert.Equal(100, body[0].GetProperty("maxBatchDelay").GetInt32());
        Assert.Equal(120, body[0].GetProperty("responseTimeout").GetInt32());
    }

    [Theory]
    [InlineData("PUT", "/models/linrelu?min_worker=1&synchronous=maybe", "synchronous must be true or false, not 'maybe'")]
    [InlineData("PUT", "/models/linrelu?min_worker=-1", "replicas must be between 0 and 64, not -1")]
    [InlineData("GET", "/models?limit=ten", "limit must be an integer, not 'ten'")]
    [InlineData("GET", "/models?next_page_token=abc", "next_page_token must be an integer, not 'abc'")]
    [InlineData("PUT", "/models/linrelu/1.0/placement?synchronous=maybe", "synchronous must be true or false, not 'maybe'")]
    public async Task Malformed_scale_list_and_placement_parameters_are_refused(string method, string path, string message)
    {
        using var management = serve.Management();
        var (status, body) = await Call(management, new HttpMethod(method), path);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(message, Message(body));
    }

    [Fact]
    public async Task A_json_body_registers_too()
    {
        using var management = serve.Management();
        var (status, body) = await Call(management, HttpMethod.Post, "/models",
            Json.Body("""{"url": "identity.pt", "model_name": "fromjson", "initial_workers": 0}"""));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("registered with 0 initial workers", Status(body));
    }

    [Fact]
    public async Task A_synchronous_registration_of_a_file_the_workers_refuse_is_undone_with_the_reason()
    {
        using var management = serve.Management();
        var (status, body) = await Call(management, HttpMethod.Post, "/models?url=garbage.pt&model_name=broken&initial_workers=1");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.StartsWith("Model broken version 1.0 was not registered: model file refused:", Message(body), StringComparison.Ordinal);
        Assert.Contains("is not a TorchScript file that libtorch can load", Message(body), StringComparison.Ordinal);
        await Waiting.UntilAsync(async () => (await Call(management, HttpMethod.Get, "/models/broken")).Status == HttpStatusCode.NotFound,
            TimeSpan.FromSeconds(10), "the failed registration to be undone");
    }

    [Fact]
    public async Task A_model_whose_code_reads_host_files_is_refused_before_libtorch_loads_it()
    {
        using var management = serve.Management();
        var (status, body) = await Call(management, HttpMethod.Post, "/models?url=snoop.pt&model_name=snoop&initial_workers=1");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.StartsWith("Model snoop version 1.0 was not registered: model file refused:", Message(body), StringComparison.Ordinal);
        Assert.Contains("calls from_file (in model/code/__torch__.py), which reads files of the host", Message(body), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Management_endpoints_answer_only_on_the_management_listener()
    {
        using var inference = serve.Inference();
        var response = await inference.GetAsync("/models", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}

/// <summary>The model API is off by default, as in TorchServe.</summary>
public sealed class ModelApiDisabledTests(ServeFactory serve) : IClassFixture<ServeFactory>
{
    [Fact]
    public async Task Registering_and_unregistering_answer_405_and_say_how_to_enable_them()
    {
        using var management = serve.Management();
        var token = TestContext.Current.CancellationToken;
        var register = await management.PostAsync("/models?url=identity.pt", null, token);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, register.StatusCode);
        Assert.Contains("enable_model_api=true", (await Json.ReadAsync(register)).GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await management.DeleteAsync("/models/linrelu", token)).StatusCode);

        // Describing and listing stay available.
        await serve.WaitReadyAsync("linrelu");
        Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("/models/linrelu", token)).StatusCode);
    }
}
