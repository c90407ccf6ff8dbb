using System.Net;
using System.Text.Json;
using Grpc.Core;
using Serve.Gateway.Grpc.Oip;
using Serve.Gateway.Grpc.TorchServe;
using Serve.Gateway.Security;

namespace Serve.Standalone.Tests;

/// <summary>Tenants from configuration: their keys, rate and concurrency quotas through the gateway, and their usage.</summary>
public sealed class TenantTests(TenantTests.Factory serve) : IClassFixture<TenantTests.Factory>, IAsyncLifetime
{
    public const string RateKey = "tenant-rate-key-0123456789abcdef0123456789";
    public const string BusyKey = "tenant-busy-key-0123456789abcdef0123456789";
    public const string PlainKey = "tenant-plain-key-0123456789abcdef012345678";

    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            // "batched" holds a lone request up to 3 s, waiting for a second one: a request in flight for long enough.
            new("Serve:LoadModels", "linrelu=linrelu.pt?shared_with=rated;busy,batched=identity.pt?batch_size=2&max_batch_delay=3000&shared_with=busy;plain"),
            new("Serve:Tenants:0:Id", "rated"),
            new("Serve:Tenants:0:KeySha256:0", TenantDirectory.Hash(RateKey)),
            new("Serve:Tenants:0:RequestsPerSecond", "1"),
            new("Serve:Tenants:0:Burst", "2"),
            new("Serve:Tenants:1:Id", "busy"),
            new("Serve:Tenants:1:Name", "Busy team"),
            new("Serve:Tenants:1:KeySha256:0", TenantDirectory.Hash(BusyKey)),
            new("Serve:Tenants:1:MaxConcurrent", "1"),
            new("Serve:Tenants:1:MaxModels", "1"),
            new("Serve:Tenants:2:Id", "plain"),
            new("Serve:Tenants:2:KeySha256:0", TenantDirectory.Hash(PlainKey)),
            new("Serve:Tenants:2:MaxQueued", "1"),
            new("Serve:EnableModelApi", "true"),
        ];
    }

    public async ValueTask InitializeAsync() => await serve.WaitReadyAsync("linrelu", "batched");

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private HttpClient TenantClient(int port, string key)
    {
        var client = serve.Anonymous(port);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private static Task<HttpResponseMessage> PredictAsync(HttpClient client, string model = "linrelu") =>
        client.PostAsync($"/predictions/{model}", Json.Body(model == "linrelu" ? TestModels.OnesJson : "[1]"), Token);

    [Fact]
    public async Task A_tenants_key_opens_inference_only()
    {
        using var inference = TenantClient(8080, BusyKey);
        using var answered = await PredictAsync(inference);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);

        using var management = TenantClient(8081, BusyKey);
        using var refused = await management.GetAsync("/models", Token);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    [Fact]
    public async Task The_rate_quota_trips_with_429_and_retry_after_then_recovers()
    {
        using var client = TenantClient(8080, RateKey);
        HttpResponseMessage? tripped = null;
        for (var i = 0; i < 10 && tripped is null; i++)
        {
            var response = await PredictAsync(client);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                tripped = response;
            }
            else
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                response.Dispose();
            }
        }

        Assert.NotNull(tripped);
        using (tripped)
        {
            Assert.True(tripped.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
            var message = (await Json.ReadAsync(tripped)).GetProperty("message").GetString();
            Assert.Contains("Tenant \"rated\" is over its RequestsPerSecond quota (1/s, burst 2)", message);
        }

        // The bucket refills: the tenant is served again.
        await Waiting.UntilAsync(async () =>
        {
            using var again = await PredictAsync(client);
            return again.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(10), "the rated tenant to be served again");

        // gRPC meets the same quota, as RESOURCE_EXHAUSTED.
        var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(serve.GrpcAnonymous(7070));
        var headers = new Metadata { { "authorization", "Bearer " + RateKey } };
        RpcException? exhausted = null;
        for (var i = 0; i < 10 && exhausted is null; i++)
        {
            try
            {
                await grpc.ServerReadyAsync(new ServerReadyRequest(), headers, cancellationToken: Token);
            }
            catch (RpcException error)
            {
                exhausted = error;
            }
        }

        Assert.Equal(StatusCode.ResourceExhausted, exhausted?.StatusCode);
        Assert.Contains("RequestsPerSecond quota", exhausted!.Status.Detail);
    }

    private static PredictionsRequest Predict(string model) => new()
    {
        ModelName = model, Input = { ["data"] = Google.Protobuf.ByteString.CopyFromUtf8(model == "linrelu" ? TestModels.OnesJson : "[1]") },
    };

    /// <summary>Writes the requests on one StreamPredictions2 call and reads every answer (in band: <c>status</c> set on failures).</summary>
    private static async Task<List<PredictionResponse>> StreamAsync(
        InferenceAPIsService.InferenceAPIsServiceClient client, Metadata? headers, params Func<Task<PredictionsRequest>>[] requests)
    {
        using var call = client.StreamPredictions2(headers, cancellationToken: Token);
        var answers = new List<PredictionResponse>();
        foreach (var next in requests)
        {
            await call.RequestStream.WriteAsync(await next(), Token);
        }

        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext(Token))
        {
            answers.Add(call.ResponseStream.Current);
        }

        return answers;
    }

    [Fact]
    public async Task Each_message_of_a_stream_takes_a_rate_token_and_over_quota_is_answered_in_band()
    {
        var client = new InferenceAPIsService.InferenceAPIsServiceClient(serve.GrpcAnonymous(7070));
        var headers = new Metadata { { "authorization", "Bearer " + RateKey } };

        var answers = await StreamAsync(client, headers, [.. Enumerable.Range(0, 6).Select(_ => (Func<Task<PredictionsRequest>>)(() => Task.FromResult(Predict("linrelu"))))]);

        // 1 per second with a burst of 2: one stream cannot run six at once, and it stays open to answer all six.
        Assert.Equal(6, answers.Count);
        var refused = answers.Where(a => a.Status is not null).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, a => Assert.Equal((int)StatusCode.ResourceExhausted, a.Status.Code));
        Assert.Contains("RequestsPerSecond quota", refused[0].Status.Message);
    }

    [Fact]
    public async Task Each_message_of_a_stream_takes_a_concurrency_permit()
    {
        var client = new InferenceAPIsService.InferenceAPIsServiceClient(serve.GrpcAnonymous(7070));
        var headers = new Metadata { { "authorization", "Bearer " + BusyKey } };

        // The first waits in "batched"'s queue (up to 3 s) for a second; the second arrives while it is in flight.
        var answers = await StreamAsync(client, headers,
            () => Task.FromResult(Predict("batched")),
            async () =>
            {
                await Waiting.UntilAsync(async () => await InFlightAsync("busy") == 1, TimeSpan.FromSeconds(10), "the stream's first request in flight");
                return Predict("batched");
            });

        Assert.Null(answers[0].Status);
        Assert.Equal((int)StatusCode.ResourceExhausted, answers[1].Status?.Code);
        Assert.Contains("has 1 requests in flight, its MaxConcurrent quota", answers[1].Status!.Message);
    }

    [Fact]
    public async Task A_key_replaced_while_a_stream_is_open_no_longer_works_on_it()
    {
        var client = new InferenceAPIsService.InferenceAPIsServiceClient(serve.GrpcAnonymous(7070));
        var headers = new Metadata { { "authorization", "Bearer " + serve.Keys.Current(KeyKind.Inference) } };
        using var call = client.StreamPredictions2(headers, cancellationToken: Token);

        await call.RequestStream.WriteAsync(Predict("linrelu"), Token);
        Assert.True(await call.ResponseStream.MoveNext(Token));
        Assert.Null(call.ResponseStream.Current.Status);

        // The key the stream opened with is replaced, as when it expires: the next message meets the new key.
        serve.Keys.Rotate(KeyKind.Inference);
        await call.RequestStream.WriteAsync(Predict("linrelu"), Token);
        Assert.True(await call.ResponseStream.MoveNext(Token));
        Assert.Equal((int)StatusCode.Unauthenticated, call.ResponseStream.Current.Status?.Code);
        Assert.Contains("Token authorization failed", call.ResponseStream.Current.Status!.Message);
        await call.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task The_concurrency_quota_refuses_a_second_request_in_flight_and_others_are_not_affected()
    {
        using var busy = TenantClient(8080, BusyKey);
        var first = PredictAsync(busy, "batched");
        // The first waits in "batched"'s queue for up to 3 s; wait until the gateway counts it in flight.
        await Waiting.UntilAsync(async () => await InFlightAsync("busy") == 1, TimeSpan.FromSeconds(10), "the busy tenant's first request in flight");

        using var second = await PredictAsync(busy);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.Contains("has 1 requests in flight, its MaxConcurrent quota", (await Json.ReadAsync(second)).GetProperty("message").GetString());

        using var admin = serve.Inference();
        using var other = await PredictAsync(admin);
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);

        using var answered = await first;
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        using var after = await PredictAsync(busy);
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);

        var usage = await TenantAsync("busy");
        Assert.Equal("Busy team", usage.GetProperty("name").GetString());
        Assert.True(usage.GetProperty("usage").GetProperty("rejected").GetProperty("concurrency").GetInt64() >= 1);
        Assert.True(usage.GetProperty("usage").GetProperty("answered").GetInt64() >= 2);
        Assert.True(usage.GetProperty("usage").GetProperty("queueMs").GetDouble() > 0);
    }

    [Fact]
    public async Task A_tenant_sees_only_its_own_and_shared_models_and_its_model_quota_stops_a_registration()
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=busyonly&tenant=busy&initial_workers=1&synchronous=true");
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=ratedshares&tenant=rated&shared_with=busy&initial_workers=1&synchronous=true");
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        var (_, described) = await serve.ManageAsync(HttpMethod.Get, "/models/ratedshares");
        Assert.Equal("rated", described[0].GetProperty("owner").GetString());
        Assert.Equal(["busy"], described[0].GetProperty("sharedWith").EnumerateArray().Select(e => e.GetString()));

        using var busy = TenantClient(8080, BusyKey);
        using var busyOwn = await PredictAsync(busy, "busyonly");
        Assert.Equal(HttpStatusCode.OK, busyOwn.StatusCode);
        using var busyShared = await PredictAsync(busy, "ratedshares");
        Assert.Equal(HttpStatusCode.OK, busyShared.StatusCode);

        // Another tenant's model is "not found", word for word as a model that does not exist.
        using var plain = TenantClient(8080, PlainKey);
        using var hidden = await plain.GetAsync("/v2/models/busyonly", Token);
        using var missing = await plain.GetAsync("/v2/models/nosuchmodel", Token);
        Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
        Assert.Equal("Model not found: busyonly", (await Json.ReadAsync(hidden)).GetProperty("error").GetString());
        Assert.Equal("Model not found: nosuchmodel", (await Json.ReadAsync(missing)).GetProperty("error").GetString());
        var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(serve.GrpcAnonymous(7070));
        var notFound = await Assert.ThrowsAsync<RpcException>(() => grpc.ModelReadyAsync(new ModelReadyRequest { Name = "busyonly" },
            new Metadata { { "authorization", "Bearer " + PlainKey } }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);

        // The admin tenant sees everything.
        using var admin = serve.Inference();
        using var adminCall = await PredictAsync(admin, "busyonly");
        Assert.Equal(HttpStatusCode.OK, adminCall.StatusCode);

        (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=busysecond&tenant=busy&initial_workers=1");
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Contains("Tenant \"busy\" would have 2 model versions registered, more than its MaxModels quota of 1", Json.Message(body));
        (status, _) = await serve.ManageAsync(HttpMethod.Get, "/models/busysecond");
        Assert.Equal(HttpStatusCode.NotFound, status);

        (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=nobody&tenant=ghost");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("tenant 'ghost' is not configured", Json.Message(body));
    }

    [Fact]
    public async Task A_tenants_queue_bound_reaches_the_replica_and_refuses_only_that_tenant()
    {
        using var plain = TenantClient(8080, PlainKey);
        var first = PredictAsync(plain, "batched");
        await Waiting.UntilAsync(async () => await InFlightAsync("plain") == 1, TimeSpan.FromSeconds(10), "plain's first request in flight");

        // The replica holds one request of plain's (MaxQueued 1) while it waits for a batch: the other is refused
        // there. Which one reaches the replica first is up to the thread pool, not the order of sending.
        var second = PredictAsync(plain, "batched");
        using var one = await first;
        using var other = await second;
        var (answered, refused) = one.StatusCode == HttpStatusCode.OK ? (one, other) : (other, one);
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.TooManyRequests), (answered.StatusCode, refused.StatusCode));
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        Assert.Contains("Tenant \"plain\" has 1 requests queued", (await Json.ReadAsync(refused)).GetProperty("message").GetString());
        Assert.True((await TenantAsync("plain")).GetProperty("usage").GetProperty("rejected").GetProperty("queue").GetInt64() >= 1);
    }

    [Fact]
    public async Task A_tenant_created_through_the_api_gets_a_key_once_owns_models_within_its_quota_and_can_be_removed()
    {
        var (status, created) = await serve.ManageAsync(HttpMethod.Post, "/tenants?id=fresh&name=Fresh&max_models=1&weight=2");
        Assert.Equal(HttpStatusCode.Created, status);
        var key = created.GetProperty("key").GetString()!;
        Assert.True(key.Length >= 40);
        Assert.DoesNotContain(key, File.ReadAllText(serve.Keys.FilePath));

        (status, _) = await serve.ManageAsync(HttpMethod.Post, "/tenants?id=fresh");
        Assert.Equal(HttpStatusCode.Conflict, status);
        (status, var newline) = await serve.ManageAsync(HttpMethod.Post, "/tenants?id=other%0A");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("tenant id 'other\n' must be", Json.Message(newline));
        (status, var bad) = await serve.ManageAsync(HttpMethod.Post, "/tenants?id=x&weight=0&burst=lots");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("burst must be a whole number", Json.Message(bad));
        (status, _) = await serve.ManageAsync(HttpMethod.Delete, "/tenants/busy");
        Assert.Equal(HttpStatusCode.Forbidden, status);

        // Every gateway learns the tenant from the registry's catalog: its key works once that arrived.
        (status, var registered) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=freshmodel&tenant=fresh&initial_workers=1&synchronous=true");
        Assert.True(status == HttpStatusCode.OK, registered.ToString());
        using var fresh = TenantClient(8080, key);
        await Waiting.UntilAsync(async () => (await PredictAsync(fresh, "freshmodel")).StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(10), "the new tenant's key to call its model");
        using var notShared = await PredictAsync(fresh);
        Assert.Equal(HttpStatusCode.NotFound, notShared.StatusCode);

        (status, var over) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=freshsecond&tenant=fresh");
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Contains("MaxModels quota of 1", Json.Message(over));

        var listed = await TenantAsync("fresh");
        Assert.Equal("api", listed.GetProperty("source").GetString());
        Assert.Equal(2, listed.GetProperty("weight").GetInt32());

        // Models are owned by the tenant's id: a tenant created later with it must not inherit them.
        (status, var owns) = await serve.ManageAsync(HttpMethod.Delete, "/tenants/fresh");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains("owns 1 model version(s): freshmodel/1.0; unregister them first", Json.Message(owns));
        Assert.Equal(HttpStatusCode.OK, (await serve.ManageAsync(HttpMethod.Delete, "/models/freshmodel")).Status);

        (status, _) = await serve.ManageAsync(HttpMethod.Delete, "/tenants/fresh");
        Assert.Equal(HttpStatusCode.OK, status);
        await Waiting.UntilAsync(async () => (await PredictAsync(fresh, "linrelu")).StatusCode == HttpStatusCode.Unauthorized,
            TimeSpan.FromSeconds(10), "the removed tenant's key to stop working");
        (status, _) = await serve.ManageAsync(HttpMethod.Delete, "/tenants/fresh");
        Assert.Equal(HttpStatusCode.NotFound, status);
    }

    [Fact]
    public async Task A_tenant_created_again_with_a_removed_tenants_id_is_not_shared_with_as_the_old_one_was()
    {
        var (status, first) = await serve.ManageAsync(HttpMethod.Post, "/tenants?id=again");
        Assert.Equal(HttpStatusCode.Created, status);
        (status, var registered) = await serve.ManageAsync(HttpMethod.Post,
            "/models?url=identity.pt&model_name=sharedonce&shared_with=again&initial_workers=1&synchronous=true");
        Assert.True(status == HttpStatusCode.OK, registered.ToString());
        using (var old = TenantClient(8080, first.GetProperty("key").GetString()!))
        {
            await Waiting.UntilAsync(async () => (await PredictAsync(old, "sharedonce")).StatusCode == HttpStatusCode.OK,
                TimeSpan.FromSeconds(10), "the first tenant's key to call the model shared with it");
        }

        Assert.Equal(HttpStatusCode.OK, (await serve.ManageAsync(HttpMethod.Delete, "/tenants/again")).Status);
        var (_, described) = await serve.ManageAsync(HttpMethod.Get, "/models/sharedonce");
        Assert.Empty(described[0].GetProperty("sharedWith").EnumerateArray());

        (status, var second) = await serve.ManageAsync(HttpMethod.Post, "/tenants?id=again");
        Assert.Equal(HttpStatusCode.Created, status);
        using var newcomer = TenantClient(8080, second.GetProperty("key").GetString()!);
        await Waiting.UntilAsync(async () => (await PredictAsync(newcomer, "linrelu")).StatusCode != HttpStatusCode.Unauthorized,
            TimeSpan.FromSeconds(10), "the new tenant's key to be known");
        Assert.Equal(HttpStatusCode.NotFound, (await PredictAsync(newcomer, "sharedonce")).StatusCode);
    }

    [Fact]
    public async Task An_api_tenant_is_updated_in_place_and_its_key_rotated_without_a_gap()
    {
        var (status, created) = await serve.ManageAsync(HttpMethod.Post, "/tenants?id=rotating&requests_per_second=1&burst=1");
        Assert.Equal(HttpStatusCode.Created, status);
        var oldKey = created.GetProperty("key").GetString()!;
        var oldKeyId = created.GetProperty("keyId").GetString()!;
        using var old = TenantClient(8080, oldKey);
        async Task<HttpStatusCode> MetadataAsync(HttpClient client)
        {
            using var response = await client.GetAsync("/v2", Token);
            return response.StatusCode;
        }

        await Waiting.UntilAsync(async () => await MetadataAsync(old) != HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(10),
            "the new tenant's key to be known");
        var strict = new[] { await MetadataAsync(old), await MetadataAsync(old), await MetadataAsync(old) };
        Assert.Contains(HttpStatusCode.TooManyRequests, strict);

        // New quotas apply at once; what was not given stays.
        (status, var updated) = await serve.ManageAsync(HttpMethod.Patch, "/tenants/rotating?requests_per_second=1000&burst=1000&name=Rotating");
        Assert.True(status == HttpStatusCode.OK, updated.ToString());
        var tenant = updated.GetProperty("tenant");
        Assert.Equal(("Rotating", 1000, 1, 0), (tenant.GetProperty("name").GetString(), tenant.GetProperty("quotas").GetProperty("requestsPerSecond").GetInt32(),
            tenant.GetProperty("weight").GetInt32(), tenant.GetProperty("quotas").GetProperty("maxModels").GetInt32()));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await MetadataAsync(old));
        }

        // Rotation: the new key works beside the old one until the old one is revoked.
        (status, var added) = await serve.ManageAsync(HttpMethod.Post, "/tenants/rotating/keys");
        Assert.Equal(HttpStatusCode.Created, status);
        using var fresh = TenantClient(8080, added.GetProperty("key").GetString()!);
        var freshKeyId = added.GetProperty("keyId").GetString()!;
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (await MetadataAsync(old), await MetadataAsync(fresh)));
        Assert.Equal([oldKeyId, freshKeyId], (await TenantAsync("rotating")).GetProperty("keys").EnumerateArray().Select(k => k.GetString()!).ToArray());

        (status, _) = await serve.ManageAsync(HttpMethod.Delete, $"/tenants/rotating/keys/{oldKeyId}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((HttpStatusCode.Unauthorized, HttpStatusCode.OK), (await MetadataAsync(old), await MetadataAsync(fresh)));
        (status, var last) = await serve.ManageAsync(HttpMethod.Delete, $"/tenants/rotating/keys/{freshKeyId}");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains("only key", Json.Message(last));

        // What cannot be done says why.
        (status, _) = await serve.ManageAsync(HttpMethod.Patch, "/tenants/busy?weight=2");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        (status, _) = await serve.ManageAsync(HttpMethod.Post, "/tenants/busy/keys");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        (status, _) = await serve.ManageAsync(HttpMethod.Patch, "/tenants/nobody?weight=2");
        Assert.Equal(HttpStatusCode.NotFound, status);
        (status, _) = await serve.ManageAsync(HttpMethod.Post, "/tenants/nobody/keys");
        Assert.Equal(HttpStatusCode.NotFound, status);
        (status, _) = await serve.ManageAsync(HttpMethod.Delete, "/tenants/rotating/keys/0000000000000000");
        Assert.Equal(HttpStatusCode.NotFound, status);
        (status, var bad) = await serve.ManageAsync(HttpMethod.Patch, "/tenants/rotating?weight=0&colour=red");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Weight must be 1-1000", Json.Message(bad));
        Assert.Contains("unknown setting 'colour'", Json.Message(bad));
        Assert.Equal(1, (await TenantAsync("rotating")).GetProperty("weight").GetInt32());

        (status, _) = await serve.ManageAsync(HttpMethod.Delete, "/tenants/rotating");
        Assert.Equal(HttpStatusCode.OK, status);
    }

    private async Task<JsonElement> TenantAsync(string id)
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Get, "/tenants");
        Assert.Equal(HttpStatusCode.OK, status);
        return body.GetProperty("tenants").EnumerateArray().Single(t => t.GetProperty("id").GetString() == id);
    }

    private async Task<long> InFlightAsync(string id) => (await TenantAsync(id)).GetProperty("usage").GetProperty("inFlight").GetInt64();
}

/// <summary>The gateway's per-tenant limiters themselves.</summary>
public sealed class TenantQuotaLimiterTests
{
    private static Microsoft.AspNetCore.Http.DefaultHttpContext Request()
    {
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        Microsoft.Extensions.DependencyInjection.LoggingServiceCollectionExtensions.AddLogging(services);
        return new Microsoft.AspNetCore.Http.DefaultHttpContext
        {
            RequestServices = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(services),
            Response = { Body = new MemoryStream() },
        };
    }

    [Fact]
    public async Task A_tenant_recreated_with_other_limits_is_held_to_the_new_ones()
    {
        using var quotas = new TenantQuotas();
        var strict = new Tenant("t", "t", new TenantOptions { Id = "t", RequestsPerSecond = 1, Burst = 1 });
        using (var first = await quotas.AdmitAsync(Request(), strict))
        {
            Assert.NotNull(first);
        }

        var refused = Request();
        Assert.Null(await quotas.AdmitAsync(refused, strict));
        Assert.Equal(429, refused.Response.StatusCode);

        var relaxed = strict with { Settings = new TenantOptions { Id = "t", RequestsPerSecond = 100, Burst = 100 } };
        using var admitted = await quotas.AdmitAsync(Request(), relaxed);
        Assert.NotNull(admitted);
        Assert.Equal(1, quotas.UsageOf("t").RejectedRate);
    }
}
