using System.Net;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Gateway.Grpc.Oip;
using Serve.Gateway.Grpc.TorchServe;
using Serve.Gateway.Hosting;
using Serve.Gateway.Security;

namespace Serve.Standalone.Tests;

/// <summary>Token authorization, on by default, against the real standalone server in memory: hostile callers first.</summary>
public sealed class TokenAuthorizationTests(TokenAuthorizationTests.Factory serve) : IClassFixture<TokenAuthorizationTests.Factory>, IAsyncLifetime
{
    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() => [new("Serve:LoadModels", "linrelu=linrelu.pt")];
    }

    public async ValueTask InitializeAsync() => await serve.WaitReadyAsync("linrelu");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(8080, "POST", "/predictions/linrelu", null)]
    [InlineData(8080, "POST", "/v2/models/linrelu/infer", null)]
    [InlineData(8080, "GET", "/v2/models/linrelu", null)]
    [InlineData(8080, "GET", "/no/such/path", null)]
    [InlineData(8081, "GET", "/models", null)]
    [InlineData(8081, "POST", "/models?url=linrelu.pt", null)]
    [InlineData(8081, "GET", "/cluster", null)]
    [InlineData(8081, "GET", "/models", "not-the-key")]
    [InlineData(8081, "GET", "/models", "inference")]
    [InlineData(8080, "POST", "/predictions/linrelu", "management")]
    [InlineData(8080, "POST", "/predictions/linrelu", "API")]
    public async Task Calls_without_the_right_key_get_401_and_one_message_whatever_was_wrong(int port, string method, string path, string? key)
    {
        using var client = serve.Anonymous(port);
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = Json.Body(TestModels.OnesJson) };
        if (key is not null)
        {
            var presented = key switch
            {
                "inference" => serve.Keys.Current(KeyKind.Inference),
                "management" => serve.Keys.Current(KeyKind.Management),
                "API" => serve.Keys.Current(KeyKind.Api),
                _ => key,
            };
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", presented);
        }

        using var response = await client.SendAsync(request, Token);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        var body = await Json.ReadAsync(response);
        Assert.Equal(401, body.GetProperty("code").GetInt32());
        Assert.Equal(ServeErrors.TokenAuthorizationFailed.Message, body.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData(8080, "GET", "/ping")]
    [InlineData(8080, "GET", "/v2/health/live")]
    [InlineData(8080, "GET", "/v2/health/ready")]
    [InlineData(8080, "OPTIONS", "/")]
    [InlineData(8081, "GET", "/api-description")]
    public async Task Liveness_readiness_and_the_api_descriptions_answer_without_a_key(int port, string method, string path)
    {
        using var client = serve.Anonymous(port);
        using var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path), Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Grpc_calls_without_the_key_are_unauthenticated_but_health_answers()
    {
        var anonymous = serve.GrpcAnonymous(7070);
        var predictions = await Assert.ThrowsAsync<RpcException>(() => new InferenceAPIsService.InferenceAPIsServiceClient(anonymous)
            .PredictionsAsync(new PredictionsRequest { ModelName = "linrelu" }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, predictions.StatusCode);
        Assert.Equal(ServeErrors.TokenAuthorizationFailed.Message, predictions.Status.Detail);

        var live = await Assert.ThrowsAsync<RpcException>(() => new GRPCInferenceService.GRPCInferenceServiceClient(anonymous)
            .ServerLiveAsync(new ServerLiveRequest(), cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, live.StatusCode);

        // The inference key does not open the management listener.
        var management = new Serve.Gateway.Grpc.Management.ManagementAPIsService.ManagementAPIsServiceClient(serve.GrpcAnonymous(7071));
        var wrongKey = new Metadata { { "authorization", "Bearer " + serve.Keys.Current(KeyKind.Inference) } };
        var listed = await Assert.ThrowsAsync<RpcException>(() => management.ListModelsAsync(
            new Serve.Gateway.Grpc.Management.ListModelsRequest(), wrongKey, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, listed.StatusCode);

        var health = await new Health.HealthClient(anonymous).CheckAsync(new HealthCheckRequest(), cancellationToken: Token);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        var withKey = new Metadata { { "authorization", "Bearer " + serve.Keys.Current(KeyKind.Inference) } };
        var ping = await new InferenceAPIsService.InferenceAPIsServiceClient(anonymous).PingAsync(new Empty(), withKey, cancellationToken: Token);
        Assert.Contains("Healthy", ping.Health);
    }

    [Fact]
    public void The_key_file_is_torchserves_format_and_only_its_owner_can_read_it()
    {
        var path = serve.Keys.FilePath;
        Assert.Equal(Path.Combine(serve.ModelStore, "data", "key_file.json"), path);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        using var file = JsonDocument.Parse(File.ReadAllText(path));
        foreach (var name in new[] { "management", "inference" })
        {
            Assert.True(file.RootElement.GetProperty(name).GetProperty("key").GetString()!.Length >= 40);
            Assert.True(DateTimeOffset.Parse(file.RootElement.GetProperty(name).GetProperty("expiration time").GetString()!, System.Globalization.CultureInfo.InvariantCulture) > DateTimeOffset.UtcNow);
        }

        Assert.False(file.RootElement.GetProperty("API").TryGetProperty("expiration time", out _));
    }

    [Fact]
    public async Task Rotating_a_key_needs_the_api_key_and_retires_the_old_one()
    {
        using var management = serve.Management();
        using var withManagementKey = await management.GetAsync("/token?type=management", Token);
        Assert.Equal(HttpStatusCode.Unauthorized, withManagementKey.StatusCode);

        using var api = serve.Anonymous(8081);
        api.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", serve.Keys.Current(KeyKind.Api));
        using var badType = await api.GetAsync("/token?type=everything", Token);
        Assert.Equal(HttpStatusCode.BadRequest, badType.StatusCode);

        using var inference = serve.Inference();
        var oldKey = serve.Keys.Current(KeyKind.Inference);
        using var rotated = await api.GetAsync("/token?type=inference", Token);
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        var newKey = (await Json.ReadAsync(rotated)).GetProperty("inference").GetProperty("key").GetString()!;
        Assert.NotEqual(oldKey, newKey);
        Assert.Contains(newKey, File.ReadAllText(serve.Keys.FilePath));

        using var old = await inference.PostAsync("/predictions/linrelu", Json.Body(TestModels.OnesJson), Token);
        Assert.Equal(HttpStatusCode.Unauthorized, old.StatusCode);
        using var fresh = serve.Inference();
        using var answered = await fresh.PostAsync("/predictions/linrelu", Json.Body(TestModels.OnesJson), Token);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
    }
}

/// <summary>The keys themselves: expiry, persistence across restarts, constant-time checks' answers.</summary>
public sealed class ApiKeysTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("serve-keys-").FullName;
    private readonly ManualClock _clock = new(DateTimeOffset.Parse("2026-11-26T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private ApiKeys Keys(double minutes = 60) => new(
        Options.Create(new SecurityOptions { TokenExpirationMinutes = minutes }),
        Options.Create(new GatewayOptions { DataDirectory = _directory }),
        _clock);

    [Fact]
    public void Inference_and_management_keys_expire_and_the_api_key_does_not()
    {
        var keys = Keys(minutes: 60);
        var inference = keys.Current(KeyKind.Inference);
        var api = keys.Current(KeyKind.Api);
        Assert.True(keys.Accepts(KeyKind.Inference, inference));
        Assert.False(keys.Accepts(KeyKind.Inference, inference[..^1]));
        Assert.False(keys.Accepts(KeyKind.Inference, null));
        Assert.False(keys.Accepts(KeyKind.Management, inference));

        _clock.Now += TimeSpan.FromMinutes(61);
        Assert.False(keys.Accepts(KeyKind.Inference, inference));
        Assert.True(keys.Accepts(KeyKind.Api, api));

        // Rotating with the API key brings a working key back.
        var (renewed, expires) = keys.Rotate(KeyKind.Inference);
        Assert.True(keys.Accepts(KeyKind.Inference, renewed));
        Assert.Equal(_clock.Now + TimeSpan.FromMinutes(60), expires);
    }

    [Fact]
    public void A_restart_keeps_keys_still_valid_and_replaces_expired_ones()
    {
        var first = Keys();
        var inference = first.Current(KeyKind.Inference);
        var api = first.Current(KeyKind.Api);

        _clock.Now += TimeSpan.FromMinutes(30);
        var second = Keys();
        Assert.Equal(inference, second.Current(KeyKind.Inference));
        Assert.Equal(api, second.Current(KeyKind.Api));

        _clock.Now += TimeSpan.FromMinutes(31);
        var third = Keys();
        Assert.NotEqual(inference, third.Current(KeyKind.Inference));
        Assert.Equal(api, third.Current(KeyKind.Api));
    }

    [Fact]
    public void An_unreadable_key_file_is_replaced_with_new_keys()
    {
        File.WriteAllText(Path.Combine(_directory, "key_file.json"), "{ not json");
        var keys = Keys();
        Assert.True(keys.Accepts(KeyKind.Management, keys.Current(KeyKind.Management)));
        using var file = JsonDocument.Parse(File.ReadAllText(keys.FilePath));
        Assert.Equal(keys.Current(KeyKind.Management), file.RootElement.GetProperty("management").GetProperty("key").GetString());
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}

/// <summary>CVE-2024-35199's pattern: nothing listens beyond loopback unless configured, and then a warning says so.</summary>
public sealed class ExposureTests
{
    [Fact]
    public void Every_listener_and_the_cluster_port_default_to_loopback()
    {
        foreach (var (kind, address) in ServeGatewayExtensions.Addresses(new GatewayOptions()))
        {
            Assert.True(System.Net.IPAddress.IsLoopback(Listeners.ParseAddress(address, kind).Address), $"{kind} defaults to {address}");
        }

        Assert.True(System.Net.IPAddress.IsLoopback(System.Net.IPAddress.Parse(new Serve.Actors.Hosting.ServeClusterOptions().Hostname)));
        Assert.False(new SecurityOptions().DisableTokenAuthorization);
        Assert.False(new GatewayOptions().EnableModelApi);
        Assert.Empty(new GatewayOptions().AllowedUrls);
    }

    [Fact]
    public async Task A_wildcard_listener_or_disabled_tokens_log_a_warning_that_names_the_risk()
    {
        var logger = new Recording();
        var startup = new SecurityStartup(
            Options.Create(new SecurityOptions { DisableTokenAuthorization = true }),
            Options.Create(new GatewayOptions { ManagementAddress = "http://0.0.0.0:8081", MetricsAddress = "http://0.0.0.0:8082" }),
            Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(new Microsoft.Extensions.DependencyInjection.ServiceCollection()), logger);
        await startup.StartAsync(CancellationToken.None);

        Assert.Contains(logger.Warnings, w => w.Contains("Token authorization is DISABLED", StringComparison.Ordinal));
        Assert.Contains(logger.Warnings, w => w.Contains("The Management listener binds http://0.0.0.0:8081, not loopback", StringComparison.Ordinal));
        // The metrics listener has no key at all: leaving loopback is worth a warning of its own.
        Assert.Contains(logger.Warnings, w => w.Contains("The Metrics listener binds http://0.0.0.0:8082, not loopback: it answers without a key", StringComparison.Ordinal));
        Assert.DoesNotContain(logger.Warnings, w => w.Contains("Inference listener", StringComparison.Ordinal));
    }

    private sealed class Recording : Microsoft.Extensions.Logging.ILogger<SecurityStartup>
    {
        public List<string> Warnings { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state,
            Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == Microsoft.Extensions.Logging.LogLevel.Warning)
            {
                Warnings.Add(formatter(state, exception));
            }
        }
    }
}
