using Serve.Actors.Configuration;
using Serve.Actors.Hosting;
using Serve.Gateway.Hosting;
using Serve.Node.Hosting;

// The standalone server: the gateway's endpoints and registry, and a worker's replicas, in one process.
var builder = WebApplication.CreateBuilder(args);
builder.AddServeConfiguration(args);
builder.AddServeGateway(defaultModel: true);
builder.Services.AddServeWorker(builder.Configuration);
builder.Services.AddServeCluster(builder.Configuration, [ServeRoles.Gateway, ServeRoles.Worker], (akka, services) => akka
    .WithServeWorker(services, hostsRegistry: true)
    .WithServeGateway(services, hostsReplicas: true));

var app = builder.Build();
app.MapServeGateway();
await app.RunAsync();

namespace Serve.Standalone
{
    /// <summary>Names this assembly for hosts in memory (WebApplicationFactory&lt;StandaloneHost&gt;).</summary>
    public sealed class StandaloneHost
    {
        private StandaloneHost()
        {
        }
    }
}
