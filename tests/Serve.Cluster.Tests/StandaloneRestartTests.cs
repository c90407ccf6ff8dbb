using System.Net;
using System.Text.Json;

namespace Serve.Cluster.Tests;

/// <summary>
/// The standalone server started twice over one data directory, the second time with other start-up
/// flags: what the first start configured does not leak into the second, and a model whose file is gone
/// is reported once and does not keep the server from being ready.
/// </summary>
public sealed class StandaloneRestartTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private static readonly Dictionary<string, string> NoDefaultModel = new() { ["Serve__DefaultModel__Enabled"] = "false" };

    /// <summary>The first start: model x from model store A, then stopped gracefully.</summary>
    private async Task FirstStartAsync(string storeA, string data)
    {
        var token = TestContext.Current.CancellationToken;
        TestModels.WriteLinRelu(Path.Combine(storeA, "x.pt"));
        await using var first = StandaloneServer.Start(data, NoDefaultModel, null, "--model-store", storeA, "--models", "x=x.pt");
        await Waiting.UntilAsync(async () => (await first.Inference.GetAsync("/v2/models/x/ready", token)).IsSuccessStatusCode,
            Timeout, "x to serve on the first start", () => first.Process.Tail());
        first.Process.Terminate();
        await Waiting.UntilAsync(() => first.Process.HasExited, Timeout, "the first start to stop", () => first.Process.Tail());
    }

    [Fact]
    public async Task A_start_without_the_first_starts_flags_serves_its_own_models_only()
    {
        var token = TestContext.Current.CancellationToken;
        var root = Directory.CreateTempSubdirectory("serve-restart-").FullName;
        try
        {
            var storeA = Directory.CreateDirectory(Path.Combine(root, "a")).FullName;
            var data = Path.Combine(root, "data");
            await FirstStartAsync(storeA, data);

            // No model flags at all: the embedded default model is the configuration now.
            await using var second = StandaloneServer.Start(data);
            await Waiting.UntilAsync(async () => (await second.Inference.GetAsync("/v2/health/ready", token)).IsSuccessStatusCode,
                Timeout, "the second start to be ready", () => second.Process.Tail());

            Assert.Equal(HttpStatusCode.NotFound, (await second.Management.GetAsync("/models/x", token)).StatusCode);
            var listed = JsonDocument.Parse(await second.Management.GetStringAsync("/models", token)).RootElement.GetProperty("models");
            Assert.Equal(["resnet18"], listed.EnumerateArray().Select(m => m.GetProperty("modelName").GetString()));
            // The registry's own record of it (the start-up registrar may have timed out on its first ask and asked again).
            Assert.True(second.Process.Logged("Registry: ModelVersionUnregistered { Key = x/1.0 }"), second.Process.Tail());
            output.WriteLine(second.Process.Tail(10));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task A_model_whose_file_cannot_be_found_is_reported_once_and_does_not_hold_readiness_hostage()
    {
        var token = TestContext.Current.CancellationToken;
        var root = Directory.CreateTempSubdirectory("serve-restart-").FullName;
        try
        {
            var storeA = Directory.CreateDirectory(Path.Combine(root, "a")).FullName;
            var data = Path.Combine(root, "data");
            await FirstStartAsync(storeA, data);

            // Nothing configured at all (no start-up models, no default model, no model store): the journal
            // keeps x, whose file this start cannot find.
            await using var second = StandaloneServer.Start(data, NoDefaultModel);
            await Waiting.UntilAsync(async () => (await second.Inference.GetAsync("/v2/health/ready", token)).IsSuccessStatusCode,
                Timeout, "the server to be ready although x cannot load", () => second.Process.Tail());

            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await second.Inference.GetAsync("/v2/models/x/ready", token)).StatusCode);
            JsonElement worker = default;
            await Waiting.UntilAsync(async () =>
            {
                var described = JsonDocument.Parse(await second.Management.GetStringAsync("/models/x", token)).RootElement;
                worker = described[0].GetProperty("workers")[0];
                return worker.GetProperty("status").GetString() == "REJECTED";
            }, Timeout, "x's replica to be refused", () => second.Process.Tail());
            Assert.Contains("this node has none: start it with --model-store", worker.GetProperty("lastError").GetString());
            Assert.Equal(0, worker.GetProperty("restarts").GetInt32());

            // Reported once: refused for good (no restarts, no backoff loop), logged once.
            var refusals = second.Process.Lines.Count(l => l.Contains("x/1.0/0", StringComparison.Ordinal) && l.Contains("Not retrying", StringComparison.Ordinal));
            Assert.True(refusals == 1, $"x's refusal was logged {refusals} times\n{second.Process.Tail()}");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
