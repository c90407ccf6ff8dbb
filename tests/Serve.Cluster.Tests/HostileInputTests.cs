using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Serve.Gateway.Grpc.Oip;

namespace Serve.Cluster.Tests;

/// <summary>
/// A few thousand malformed requests (random bytes, broken JSON, huge declared shapes, wrong content types,
/// truncated multipart, lying binary headers, bad keys) at every public endpoint of a real standalone
/// server: every answer must be a 4xx with a JSON error, and afterwards the process is alive and a normal
/// request still works. Seeded, so a failure can be replayed.
/// </summary>
public sealed class HostileInputTests(ITestOutputHelper output)
{
    private const int Seed = 20261126;
    private const int HttpRequests = 3000;
    private const int GrpcRequests = 300;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Malformed_requests_get_json_4xx_answers_and_the_server_keeps_serving()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-hostile-").FullName;
        try
        {
            TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));
            await using var standalone = StandaloneServer.Start(Path.Combine(store, "data"), new Dictionary<string, string>
            {
                ["Serve__Models__0__Name"] = "resnet18",
                ["Serve__Models__0__Architecture"] = "resnet18",
                ["Serve__Models__0__Handler"] = "image_classifier",
                ["Serve__MaxRequestSize"] = "1000000",
            }, arguments: ["--models", "tiny=tiny.pt", "--model-store", store]);
            var (server, keys, inference, management) = (standalone.Process, standalone.Keys, standalone.Inference, standalone.Management);
            await Waiting.UntilAsync(async () => (await inference.GetAsync("/v2/health/ready", token)).IsSuccessStatusCode,
                Timeout, "tiny and resnet18 to serve", () => server.Tail());

            using var anonymousInference = new HttpClient { BaseAddress = inference.BaseAddress, Timeout = inference.Timeout };
            using var anonymousManagement = new HttpClient { BaseAddress = management.BaseAddress, Timeout = management.Timeout };
            HttpClient[] anonymous = [anonymousInference, anonymousManagement];
            var random = new Random(Seed);
            var wrong = new List<string>();
            for (var i = 0; i < HttpRequests; i++)
            {
                var (client, request, what) = Hostile(random, inference, management, anonymous);
                using (request)
                {
                    using var response = await client.SendAsync(request, token);
                    var body = await response.Content.ReadAsStringAsync(token);
                    if ((int)response.StatusCode is < 400 or > 499 || !IsJsonError(body))
                    {
                        wrong.Add($"#{i} {what}: {(int)response.StatusCode} {Truncate(body)}");
                    }
                }
            }

            using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{standalone.GrpcInferencePort}");
            var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            var headers = new Metadata { { "authorization", "Bearer " + keys.Inference } };
            for (var i = 0; i < GrpcRequests; i++)
            {
                var (request, what) = HostileInfer(random);
                try
                {
                    await grpc.ModelInferAsync(request, headers, cancellationToken: token);
                    wrong.Add($"grpc #{i} {what}: succeeded");
                }
                catch (RpcException error) when (error.StatusCode is StatusCode.InvalidArgument or StatusCode.NotFound or StatusCode.ResourceExhausted)
                {
                    // Refused as it should be.
                }
                catch (RpcException error)
                {
                    wrong.Add($"grpc #{i} {what}: {error.StatusCode} {error.Status.Detail}");
                }
            }

            output.WriteLine($"{HttpRequests} HTTP and {GrpcRequests} gRPC malformed requests sent (seed {Seed}); {wrong.Count} wrong answers");
            Assert.True(wrong.Count == 0, string.Join("\n", wrong.Take(20)));
            Assert.False(server.HasExited, server.Tail());
            using var fine = await inference.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson, Encoding.UTF8, "application/json"), token);
            Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
            using var image = new ByteArrayContent(Images.Jpeg());
            using var classified = await inference.PostAsync("/predictions/resnet18", image, token);
            Assert.Equal(HttpStatusCode.OK, classified.StatusCode);
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    private static bool IsJsonError(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            return root.ValueKind == JsonValueKind.Object && (root.TryGetProperty("message", out _) || root.TryGetProperty("error", out _));
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string Truncate(string text) => text.Length > 300 ? text[..300] + "..." : text;

    /// <summary>One malformed request, chosen and shaped by <paramref name="random"/>.</summary>
    private static (HttpClient Client, HttpRequestMessage Request, string What) Hostile(
        Random random, HttpClient inference, HttpClient management, HttpClient[] anonymous)
    {
        string[] models = ["tiny", "resnet18", "nope", "..%2f..%2fetc", new string('m', 300)];
        var model = models[random.Next(models.Length)];
        var kind = random.Next(15);
        HttpRequestMessage request;
        var client = inference;
        string what;
        switch (kind)
        {
            case 0:
                request = new HttpRequestMessage(HttpMethod.Post, $"/predictions/{model}") { Content = Bytes(random, random.Next(1, 20_000), "application/octet-stream") };
                what = "random bytes to /predictions";
                break;
            case 1:
                request = new HttpRequestMessage(HttpMethod.Put, $"/predictions/{model}") { Content = Text(BrokenJson(random), "application/json") };
                what = "broken JSON to /predictions (PUT)";
                break;
            case 2:
                request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = Text(BrokenJson(random), "application/json") };
                what = "broken JSON to infer";
                break;
            case 3:
                var huge = $$"""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [{{random.NextInt64(1L << 20, long.MaxValue)}}, {{random.Next(1, 1 << 30)}}], "data": [1, 2, 3]}]}""";
                request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = Text(huge, "application/json") };
                what = "a huge declared shape";
                break;
            case 4:
                var datatype = new[] { "FP32", "INT8", "BOOL", "BYTES", "FP16", "UINT64", "COMPLEX", "" }[random.Next(8)];
                var mismatch = $$"""{"inputs": [{"name": "x", "datatype": "{{datatype}}", "shape": [1, 10], "data": [[1, "a", null, {}], true]}]}""";
                request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = Text(mismatch, "application/json") };
                what = $"wrong data for {datatype}";
                break;
            case 5:
                var boundary = "b" + random.Next();
                var multipart = $"--{boundary}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"x.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff{new string('x', random.Next(0, 500))}";
                request = new HttpRequestMessage(HttpMethod.Post, $"/predictions/{model}")
                {
                    Content = Text(multipart, $"multipart/form-data; boundary={boundary}"),
                };
                what = "truncated multipart";
                break;
            case 6:
                var content = Bytes(random, random.Next(0, 2000), new[] { "text/plain", "image/png", "application/xml", "application/x-www-form-urlencoded", "bogus/type;;;" }[random.Next(5)]);
                request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = content };
                what = "wrong content type to infer";
                break;
            case 7:
                var json = """{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 10], "parameters": {"binary_data_size": 40}}]}""";
                var binary = new ByteArrayContent([.. Encoding.UTF8.GetBytes(json), .. new byte[random.Next(0, 39)]]);
                binary.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                binary.Headers.Add("Inference-Header-Content-Length", random.Next(2) == 0 ? "-5" : (json.Length + random.Next(1, 100)).ToString(System.Globalization.CultureInfo.InvariantCulture));
                request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = binary };
                what = "a lying binary tensor header";
                break;
            case 8:
                request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/tiny/infer") { Content = Text(new string('[', random.Next(65, 5000)), "application/json") };
                what = "deeply nested JSON";
                break;
            case 9:
                client = management;
                var query = new[] { "min_worker=two", "min_worker=5&max_worker=1", "min_worker=-3", "synchronous=maybe&min_worker=x" }[random.Next(4)];
                request = new HttpRequestMessage(HttpMethod.Put, $"/models/{model}?{query}");
                what = $"bad scale {query}";
                break;
            case 10:
                client = management;
                request = new HttpRequestMessage(HttpMethod.Post, $"/models?url={Uri.EscapeDataString(new[] { "../../etc/passwd", "http://169.254.169.254/latest", "file:///etc/shadow", "x.mar" }[random.Next(4)])}")
                {
                    Content = Text(BrokenJson(random), "application/json"),
                };
                what = "register with a hostile url (model API disabled)";
                break;
            case 11:
                client = management;
                request = new HttpRequestMessage(HttpMethod.Put, $"/models/{model}/1.0/placement?spread=perhaps&device_memory_mb=-1&nodes={new string(',', random.Next(1, 50))}");
                what = "bad placement";
                break;
            case 12:
                request = new HttpRequestMessage(HttpMethod.Post, $"/predictions/{model}") { Content = Text(TestModels.OnesJson, "application/json") };
                request.Headers.TryAddWithoutValidation("Authorization", new[] { "Bearer", "Bearer ", "Basic abc", "Bearer " + new string('k', 4000), "bearer\tx" }[random.Next(5)]);
                client = anonymous[random.Next(anonymous.Length)];
                what = "a bad key";
                break;
            case 13:
                client = management;
                var tenant = Uri.EscapeDataString(new[] { "ghost", "bad id", "..", new string('t', 100) }[random.Next(4)]);
                (request, what) = random.Next(4) switch
                {
                    0 => (new HttpRequestMessage(HttpMethod.Post, "/tenants?id=" + tenant) { Content = Text(BrokenJson(random), "application/json") },
                        "create a tenant from broken JSON"),
                    1 => (new HttpRequestMessage(HttpMethod.Patch, $"/tenants/{tenant}?weight=-1&burst=lots"), "update a tenant with bad settings"),
                    2 => (new HttpRequestMessage(HttpMethod.Post, $"/tenants/{tenant}/keys"), "a key for a tenant that does not exist"),
                    _ => (new HttpRequestMessage(HttpMethod.Delete, $"/tenants/{tenant}/keys/{Uri.EscapeDataString(RandomText(random, 16))}"), "revoke a key that does not exist"),
                };
                break;
            default:
                var path = "/" + string.Join('/', Enumerable.Range(0, random.Next(1, 6)).Select(_ => Uri.EscapeDataString(RandomText(random, random.Next(1, 20)))));
                request = new HttpRequestMessage(new[] { HttpMethod.Get, HttpMethod.Post, HttpMethod.Delete, HttpMethod.Patch }[random.Next(4)], path)
                {
                    Content = Bytes(random, random.Next(0, 100), "application/octet-stream"),
                };
                client = random.Next(2) == 0 ? inference : management;
                what = $"random path {path}";
                break;
        }

        return (client, request, what);
    }

    private static (ModelInferRequest Request, string What) HostileInfer(Random random)
    {
        var request = new ModelInferRequest { ModelName = random.Next(4) == 0 ? "nope" : "tiny" };
        var datatype = new[] { "FP32", "INT8", "FP16", "BYTES", "BOGUS", "" }[random.Next(6)];
        var shape = new[] { -1L, 0L, long.MaxValue, 3L, 1L << 40 }[random.Next(5)];
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = random.Next(5) == 0 ? "" : "input", Datatype = datatype, Shape = { 1, shape } });
        if (random.Next(2) == 0)
        {
            var raw = new byte[random.Next(0, 64)];
            random.NextBytes(raw);
            request.RawInputContents.Add(ByteString.CopyFrom(raw));
            if (random.Next(3) == 0)
            {
                request.RawInputContents.Add(ByteString.CopyFrom(raw));
            }
        }
        else
        {
            request.Inputs[0].Contents = new InferTensorContents { IntContents = { Enumerable.Range(0, random.Next(0, 7)).Select(_ => random.Next()) } };
        }

        return (request, $"{datatype} [1,{shape}] raw={request.RawInputContents.Count}");
    }

    private static ByteArrayContent Bytes(Random random, int length, string contentType)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        var content = new ByteArrayContent(bytes);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        return content;
    }

    private static ByteArrayContent Text(string text, string contentType)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(text));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        return content;
    }

    private static string BrokenJson(Random random)
    {
        string[] broken =
        [
            "{", "[1, 2", "{\"inputs\": [", "{\"inputs\": {}}", "{\"inputs\": [{\"name\": 1}]}", "nul", "\"\\ud800\"", "{\"a\":1,}",
            "[[1,1,1,1,1,1,1,1,1]]", "{\"data\": \"not numbers\"}", "[" + new string('1', 5000) + "]", "{\"inputs\": [{\"name\": \"x\", \"shape\": \"1\"}]}",
        ];
        var text = broken[random.Next(broken.Length)];
        return random.Next(3) == 0 ? text + RandomText(random, random.Next(1, 40)) : text;
    }

    private static string RandomText(Random random, int length) =>
        new([.. Enumerable.Range(0, length).Select(_ => (char)random.Next(1, 0x2FF))]);
}
