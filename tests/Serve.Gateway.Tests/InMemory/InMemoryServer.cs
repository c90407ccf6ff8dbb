using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Serve.Gateway.Hosting;
using Serve.Gateway.Security;

namespace Serve.InMemory;

/// <summary>
/// A Serve host (the gateway, or the standalone server) in memory, shared by the gateway's and the
/// standalone server's tests (this file is compiled into both). Requests reach the listener named by their
/// port (8080 inference, 8081 management, 8082 metrics, 7070 gRPC inference, 7071 gRPC management) as on
/// Kestrel. Token authorization is on, as by default: the clients here present the listener's key;
/// <see cref="Anonymous"/> presents none.
/// </summary>
public abstract class InMemoryServer<TEntryPoint> : WebApplicationFactory<TEntryPoint>
    where TEntryPoint : class
{
    private readonly string _store = Path.Combine(Path.GetTempPath(), "serve-in-memory-" + Guid.NewGuid().ToString("N"));

    /// <summary>The model store's path, without starting the server: for use while the server is being built.</summary>
    protected string StorePath => _store;

    /// <summary>
    /// A directory of its own for the model store and the data directory, removed with the server. Reading it
    /// starts the server, which writes the store, so a test that reads a file there first finds it.
    /// </summary>
    public string ModelStore
    {
        get
        {
            _ = Server;
            return _store;
        }
    }

    /// <summary>Settings beside the ones every in-memory server gets.</summary>
    protected abstract IEnumerable<KeyValuePair<string, string?>> Settings();

    /// <summary>Files for the model store, written before the server starts.</summary>
    protected virtual void PrepareModelStore(string store)
    {
    }

    /// <summary>Services that replace the real ones (test doubles at the edge).</summary>
    protected virtual void ReplaceServices(IServiceCollection services)
    {
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        Directory.CreateDirectory(_store);
        PrepareModelStore(_store);
        builder.UseSetting("Serve:Cluster:Port", "0");
        builder.UseSetting("Serve:ModelStore", _store);
        builder.UseSetting("Serve:DataDirectory", Path.Combine(_store, "data"));
        foreach (var (key, value) in Settings())
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureServices(services =>
        {
            services.AddSingleton<IStartupFilter, ListenerByPort>();
            ReplaceServices(services);
        });
    }

    public HttpClient Inference() => Client(8080, KeyKind.Inference);

    public HttpClient Management() => Client(8081, KeyKind.Management);

    public HttpClient Metrics() => Client(8082, key: null);

    /// <summary>A client for <paramref name="port"/> that sends no key.</summary>
    public HttpClient Anonymous(int port) => Client(port, key: null);

    /// <summary>The server's keys, as its key file has them.</summary>
    public ApiKeys Keys => Services.GetRequiredService<ApiKeys>();

    /// <summary>A gRPC channel to the in-memory server's gRPC inference listener, presenting the inference key.</summary>
    public GrpcChannel GrpcInference() => Channel(7070, KeyKind.Inference);

    /// <summary>A gRPC channel to the in-memory server's gRPC management listener, presenting the management key.</summary>
    public GrpcChannel GrpcManagement() => Channel(7071, KeyKind.Management);

    /// <summary>A gRPC channel to <paramref name="port"/> that sends no key.</summary>
    public GrpcChannel GrpcAnonymous(int port) => Channel(port, key: null);

    /// <summary>One management API call: its status and JSON body.</summary>
    public async Task<(HttpStatusCode Status, JsonElement Body)> ManageAsync(HttpMethod method, string path, HttpContent? body = null)
    {
        using var management = Management();
        using var response = await management.SendAsync(new HttpRequestMessage(method, path) { Content = body }, TestContext.Current.CancellationToken);
        return (response.StatusCode, await Json.ReadAsync(response));
    }

    private GrpcChannel Channel(int port, KeyKind? key)
    {
        HttpMessageHandler handler = Server.CreateHandler();
        if (key is { } kind)
        {
            handler = new BearerHandler(Keys.Current(kind)) { InnerHandler = handler };
        }

        return GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = handler });
    }

    private HttpClient Client(int port, KeyKind? key)
    {
        var client = CreateClient(new WebApplicationFactoryClientOptions { BaseAddress = new Uri($"http://127.0.0.1:{port}") });
        if (key is { } kind)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Keys.Current(kind));
        }

        return client;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && Directory.Exists(_store))
        {
            Directory.Delete(_store, recursive: true);
        }
    }

    /// <summary>What a client of a secured server does: every request carries the key.</summary>
    private sealed class BearerHandler(string key) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            return base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>What Kestrel's per-listener connection tagging does, keyed by the port the test addressed.</summary>
    private sealed class ListenerByPort : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, nextMiddleware) =>
            {
                var kind = context.Request.Host.Port switch
                {
                    8080 => ListenerKind.Inference,
                    8081 => ListenerKind.Management,
                    8082 => ListenerKind.Metrics,
                    7070 => ListenerKind.GrpcInference,
                    7071 => ListenerKind.GrpcManagement,
                    _ => (ListenerKind?)null,
                };
                if (kind is { } listener)
                {
                    var items = new ConnectionItems();
                    Listeners.Tag(items.Items, listener);
                    context.Features.Set<IConnectionItemsFeature>(items);
                }

                return nextMiddleware(context);
            });
            next(app);
        };
    }

    private sealed class ConnectionItems : IConnectionItemsFeature
    {
        public IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();
    }
}

public static class Json
{
    public static async Task<JsonElement> ReadAsync(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonElement>())!;

    public static StringContent Body(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    /// <summary>What a TorchServe answer says: an error's message, or a success's status.</summary>
    public static string Message(JsonElement body) =>
        body.TryGetProperty("message", out var message) ? message.GetString()! : body.GetProperty("status").GetString()!;
}
