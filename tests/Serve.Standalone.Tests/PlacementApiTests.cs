using System.Net;
using System.Text;
using System.Text.Json;

namespace Serve.Standalone.Tests;

/// <summary>
/// Placement through the management API on the real standalone server, with two CPU slots of 1000 MB
/// each: GET /cluster, declared memory that fits or is refused, pins, and a move under traffic.
/// </summary>
public sealed class PlacementApiTests(PlacementApiTests.Factory serve) : IClassFixture<PlacementApiTests.Factory>
{
    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            new("Serve:LoadModels", "linrelu=linrelu.pt"),
            new("Serve:EnableModelApi", "true"),
            new("Serve:Node:CpuSlots", "2"),
            new("Serve:Node:DeviceMemoryMb", "1000"),
        ];
    }

    private async Task<JsonElement[]> WorkersAsync(string model) =>
        [.. (await serve.ManageAsync(HttpMethod.Get, $"/models/{model}")).Body[0].GetProperty("workers").EnumerateArray()];

    [Fact]
    public async Task The_cluster_shows_members_devices_memory_and_replicas()
    {
        await serve.WaitReadyAsync("linrelu");
        var (status, cluster) = await serve.ManageAsync(HttpMethod.Get, "/cluster");
        Assert.Equal(HttpStatusCode.OK, status);

        var member = Assert.Single(cluster.GetProperty("members").EnumerateArray());
        Assert.Equal(["gateway", "worker"], member.GetProperty("roles").EnumerateArray().Select(r => r.GetString()).Where(r => r is "gateway" or "worker"));
        Assert.Equal("Up", member.GetProperty("status").GetString());
        var devices = member.GetProperty("devices").EnumerateArray().ToList();
        Assert.Equal(["cpu:0", "cpu:1"], devices.Select(d => d.GetProperty("name").GetString()));
        Assert.All(devices, d => Assert.Equal(1000, d.GetProperty("totalMemoryMb").GetInt64()));
        var holding = devices.Single(d => d.GetProperty("replicas").EnumerateArray().Any(r => r.GetProperty("id").GetString() == "linrelu/1.0/0"));
        Assert.Equal(1, holding.GetProperty("usedMemoryMb").GetInt64()); // 264 bytes of parameters, in MB rounded up

        // Describe tells each worker's node by name and its model's measured memory: linrelu's Linear(10, 6)
        // holds 66 float parameters.
        var worker = (await WorkersAsync("linrelu")).Single();
        Assert.Equal(member.GetProperty("name").GetString(), worker.GetProperty("nodeName").GetString());
        Assert.Equal(66 * sizeof(float), worker.GetProperty("memoryUsage").GetInt64());
    }

    [Fact]
    public async Task Declared_memory_is_packed_per_device_and_what_does_not_fit_is_refused_with_507()
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=big&initial_workers=2&device_memory_mb=600");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        var devices = (await WorkersAsync("big")).Select(w => w.GetProperty("device").GetString()!).Order().ToArray();
        Assert.Equal(["cpu:0", "cpu:1"], devices);

        (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=bigger&initial_workers=1&device_memory_mb=600");
        Assert.Equal(HttpStatusCode.InsufficientStorage, status);
        Assert.StartsWith("1 replica of model bigger version 1.0 cannot be placed: each replica declares 600 MB of device memory, " +
                          "and the most free on an allowed device is 400 MB", Json.Message(body), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await serve.ManageAsync(HttpMethod.Get, "/models/bigger")).Status);

        (status, body) = await serve.ManageAsync(HttpMethod.Put, "/models/big?min_worker=3");
        Assert.Equal(HttpStatusCode.InsufficientStorage, status);
        Assert.Equal(2, (await serve.ManageAsync(HttpMethod.Get, "/models/big")).Body[0].GetProperty("minWorkers").GetInt32());

        var (_, cluster) = await serve.ManageAsync(HttpMethod.Get, "/cluster");
        Assert.All(cluster.GetProperty("members")[0].GetProperty("devices").EnumerateArray(),
            d => Assert.True(d.GetProperty("declaredMemoryMb").GetInt64() <= 1000));
        Assert.Equal(HttpStatusCode.OK, (await serve.ManageAsync(HttpMethod.Delete, "/models/big")).Status);
    }

    [Theory]
    [InlineData("/models/linrelu/1.0/placement?spread=maybe", HttpStatusCode.BadRequest, "spread must be true or false, not 'maybe'")]
    [InlineData("/models/linrelu/1.0/placement?device_memory_mb=-5", HttpStatusCode.BadRequest, "device_memory_mb must be a whole number of MB, not '-5'")]
    [InlineData("/models/linrelu/1.0/placement?devices=gpu0", HttpStatusCode.BadRequest, "device 'gpu0' is not a device name: use cuda:N or cpu:N")]
    [InlineData("/models/linrelu/1.0/placement?nodes=nowhere", HttpStatusCode.InsufficientStorage, "no worker node is named nowhere")]
    [InlineData("/models/nope/1.0/placement?spread=true", HttpStatusCode.NotFound, "Model not found: nope")]
    [InlineData("/models/linrelu/9.9/placement?spread=true", HttpStatusCode.NotFound, "Model version: 9.9 does not exist for model: linrelu")]
    public async Task Bad_placements_are_refused_and_change_nothing(string path, HttpStatusCode expected, string message)
    {
        await serve.WaitReadyAsync("linrelu");
        var (status, body) = await serve.ManageAsync(HttpMethod.Put, path);
        Assert.Equal(expected, status);
        Assert.Contains(message, Json.Message(body), StringComparison.Ordinal);
        var described = (await serve.ManageAsync(HttpMethod.Get, "/models/linrelu")).Body[0].GetProperty("placement");
        Assert.Empty(described.GetProperty("nodes").EnumerateArray());
        Assert.Empty(described.GetProperty("devices").EnumerateArray());
    }

    [Fact]
    public async Task A_pinned_model_moves_to_its_new_device_without_failing_a_request()
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=identity.pt&model_name=pinned&initial_workers=2&devices=cpu:1");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        Assert.All(await WorkersAsync("pinned"), w => Assert.Equal("cpu:1", w.GetProperty("device").GetString()));

        using var inference = serve.Inference();
        using var stop = new CancellationTokenSource();
        var failures = new List<string>();
        var served = 0;
        var traffic = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested && served < 5000)
            {
                using var response = await inference.PostAsync("/predictions/pinned",
                    new StringContent("[[1.5]]", Encoding.UTF8, "application/json"), CancellationToken.None);
                served++;
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    failures.Add($"{response.StatusCode}: {await response.Content.ReadAsStringAsync(CancellationToken.None)}");
                }
            }
        }, CancellationToken.None);

        (status, body) = await serve.ManageAsync(HttpMethod.Put, "/models/pinned/1.0/placement?devices=cpu:0&synchronous=true");
        await stop.CancelAsync();
        await traffic;
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        Assert.Equal("Placement of model \"pinned\" version 1.0 set to devices cpu:0 with 0 MB of device memory per replica", Json.Message(body));

        // Every request during the move was answered; afterwards both replicas run on cpu:0, under new
        // indices, and the old ones are gone.
        Assert.True(failures.Count == 0, $"{failures.Count} of {served} requests failed: {string.Join("; ", failures.Take(5))}");
        Assert.True(served > 0);
        await Waiting.UntilAsync(async () => (await WorkersAsync("pinned")).Length == 2, TimeSpan.FromSeconds(10), "the old replicas to stop");
        var workers = await WorkersAsync("pinned");
        Assert.All(workers, w => Assert.Equal(("cpu:0", "READY", false),
            (w.GetProperty("device").GetString(), w.GetProperty("status").GetString(), w.GetProperty("retiring").GetBoolean())));
        Assert.DoesNotContain(workers, w => w.GetProperty("id").GetString() is "pinned/1.0/0" or "pinned/1.0/1");
        Assert.Equal(["cpu:0"], (await serve.ManageAsync(HttpMethod.Get, "/models/pinned")).Body[0].GetProperty("placement").GetProperty("devices")
            .EnumerateArray().Select(d => d.GetString()));
    }
}
