using System.Net;

namespace Serve.Standalone.Tests;

/// <summary>A start-up model whose file is not TorchScript: the failure is visible and others keep serving.</summary>
public sealed class FailingModelTests : IClassFixture<FailingModelTests.Factory>
{
    private readonly Factory _serve;

    public FailingModelTests(Factory serve) => _serve = serve;

    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
            [new("Serve:LoadModels", "linrelu=linrelu.pt,broken=garbage.pt")];
    }

    [Fact]
    public async Task Requests_get_503_naming_the_file_ping_turns_unhealthy_and_other_models_still_serve()
    {
        await _serve.WaitReadyAsync("linrelu");
        using var client = _serve.Inference();
        var token = TestContext.Current.CancellationToken;

        await Waiting.UntilAsync(async () => (await client.GetAsync("/ping", token)).StatusCode == HttpStatusCode.InternalServerError,
            TimeSpan.FromSeconds(30), "/ping to report the crash-looping model as unhealthy");
        var ping = await Json.ReadAsync(await client.GetAsync("/ping", token));
        Assert.Equal("Unhealthy", ping.GetProperty("status").GetString());

        var broken = await client.PostAsync("/predictions/broken", Json.Body("[[1]]"), token);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, broken.StatusCode);
        var message = (await Json.ReadAsync(broken)).GetProperty("message").GetString();
        Assert.Contains("garbage.pt", message);
        Assert.Contains("not a TorchScript file", message);

        var notReady = await client.GetAsync("/v2/models/broken/ready", token);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);

        var fine = await client.PostAsync("/predictions/linrelu", Json.Body(TestModels.OnesJson), token);
        Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
    }
}
