using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Serve.Standalone.Tests;

/// <summary>
/// Registration from URLs against a real HTTP server on loopback: only URLs matching allowed_urls are
/// fetched, redirects are checked again, downloads are size-limited and land in the model store whole.
/// </summary>
public sealed class ModelUrlTests(ModelUrlTests.Factory serve) : IClassFixture<ModelUrlTests.Factory>
{
    private const int MaxDownload = 100_000;

    public sealed class Factory : ServeFactory
    {
        private readonly WebApplication _modelHost;

        public Factory()
        {
            var modelFile = Path.Combine(Path.GetTempPath(), "serve-url-model-" + Guid.NewGuid().ToString("N") + ".pt");
            TorchScriptWriter.Identity(modelFile);
            var model = File.ReadAllBytes(modelFile);
            File.Delete(modelFile);

            var builder = WebApplication.CreateSlimBuilder();
            _modelHost = builder.Build();
            _modelHost.Urls.Add("http://127.0.0.1:0");
            _modelHost.MapGet("/models/{name}.pt", (string name) => name switch
            {
                "missing" => Results.NotFound(),
                "redirect-allowed" => Results.Redirect("/models/echo-moved.pt"),
                "redirect-outside" => Results.Redirect("/elsewhere/echo.pt"),
                "huge" => Results.Stream(async body =>
                {
                    // Chunked, no Content-Length: the limit must hold while streaming.
                    var chunk = new byte[10_000];
                    for (var i = 0; i < 50; i++)
                    {
                        await body.WriteAsync(chunk);
                    }
                }, "application/octet-stream"),
                _ => Results.Bytes(model, "application/octet-stream"),
            });
            _modelHost.MapGet("/elsewhere/{name}", () => Results.Bytes(model, "application/octet-stream"));
            _modelHost.StartAsync().GetAwaiter().GetResult();
            Origin = _modelHost.Urls.Single();
        }

        public string Origin { get; }

        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            new("Serve:LoadModels", "linrelu=linrelu.pt"),
            new("Serve:EnableModelApi", "true"),
            new("Serve:AllowedUrls:0", Origin.Replace(".", @"\.", StringComparison.Ordinal) + "/models/.*"),
            new("Serve:AllowedUrls:1", "file://.*"),
            new("Serve:MaxDownloadSize", MaxDownload.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ];

        public override async ValueTask DisposeAsync()
        {
            await _modelHost.DisposeAsync();
            await base.DisposeAsync();
        }
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> Register(string url, string extra = "")
    {
        using var management = serve.Management();
        using var response = await management.PostAsync($"/models?url={Uri.EscapeDataString(url)}{extra}", null, TestContext.Current.CancellationToken);
        return (response.StatusCode, await Json.ReadAsync(response));
    }

    private string[] StoreFiles()
    {
        _ = serve.Server; // the store is made when the server starts
        return [.. Directory.GetFiles(serve.ModelStore).Select(Path.GetFileName).Order()!];
    }

    [Fact]
    public async Task An_allowed_url_is_downloaded_into_the_store_and_served()
    {
        var (status, body) = await Register($"{serve.Origin}/models/echo.pt", "&model_name=downloaded&initial_workers=1");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        Assert.Contains("echo.pt", StoreFiles());
        Assert.DoesNotContain(StoreFiles(), f => f.EndsWith(".partial", StringComparison.Ordinal));

        using var inference = serve.Inference();
        using var response = await inference.PostAsync("/predictions/downloaded",
            new StringContent("[[1.5, 2.5]]", Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("[[1.5,2.5]]", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));

        // The same URL again: TorchServe's answer, and the file in the store is left alone.
        (status, body) = await Register($"{serve.Origin}/models/echo.pt", "&model_name=again&initial_workers=0");
        Assert.Equal(HttpStatusCode.InternalServerError, status);
        Assert.Equal("Model file already exists echo.pt", Json.Message(body));
    }

    [Fact]
    public async Task A_redirect_is_followed_only_to_an_allowed_url()
    {
        var (status, body) = await Register($"{serve.Origin}/models/redirect-allowed.pt", "&model_name=moved&initial_workers=0");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        Assert.Contains("redirect-allowed.pt", StoreFiles());

        var before = StoreFiles();
        (status, body) = await Register($"{serve.Origin}/models/redirect-outside.pt", "&model_name=outside&initial_workers=0");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("(a redirect) does not match any allowed URL(s)", Json.Message(body));
        Assert.Equal(before, StoreFiles());
    }

    [Theory]
    [InlineData("{origin}/elsewhere/echo.pt", "does not match any allowed URL(s)")]
    [InlineData("{origin}/models/echo.pt\n", "does not match any allowed URL(s)")]
    [InlineData("{origin}/models/../elsewhere/echo.pt", "Relative path is not allowed in url")]
    [InlineData("{origin}/models/%2e%2e/elsewhere/echo.pt", "Relative path is not allowed in url")]
    [InlineData("http://user@{host}/models/echo.pt", "does not match any allowed URL(s)")]
    [InlineData("ftp://{host}/models/echo.pt", "does not match any allowed URL(s)")]
    [InlineData("file:///etc/echo.pt", "A file URL must name a file directly in the model store")]
    public async Task Urls_outside_the_allowed_list_are_refused_before_anything_is_fetched(string template, string message)
    {
        var before = StoreFiles();
        var url = template.Replace("{origin}", serve.Origin, StringComparison.Ordinal)
            .Replace("{host}", new Uri(serve.Origin).Authority, StringComparison.Ordinal);
        var (status, body) = await Register(url, "&initial_workers=0");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains(message, Json.Message(body));
        Assert.Equal(before, StoreFiles());
    }

    [Fact]
    public async Task A_download_over_the_size_limit_is_refused_and_leaves_nothing()
    {
        var before = StoreFiles();
        var (status, body) = await Register($"{serve.Origin}/models/huge.pt", "&initial_workers=0");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains($"larger than Serve:MaxDownloadSize ({MaxDownload} bytes)", Json.Message(body));
        Assert.Equal(before, StoreFiles());
    }

    [Fact]
    public async Task A_url_that_answers_an_error_is_a_failed_download()
    {
        var (status, body) = await Register($"{serve.Origin}/models/missing.pt", "&initial_workers=0");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal($"Failed to download archive from: {serve.Origin}/models/missing.pt", Json.Message(body));
    }

    [Fact]
    public async Task A_file_url_in_the_model_store_registers_that_file()
    {
        var (status, body) = await Register(new Uri(Path.Combine(serve.ModelStore, "identity.pt")).AbsoluteUri, "&model_name=local&initial_workers=0");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        Assert.Contains("identity.pt", StoreFiles());
    }

    [Fact]
    public async Task A_downloaded_model_whose_registration_fails_is_removed_again()
    {
        var (status, body) = await Register($"{serve.Origin}/models/conflict.pt", "&model_name=linrelu&initial_workers=0");
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("Model version 1.0 is already registered for model linrelu", Json.Message(body));
        Assert.DoesNotContain("conflict.pt", StoreFiles());
    }
}
