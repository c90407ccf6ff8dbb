using Serve.Actors.Configuration;
using Serve.Actors.Hosting;
using Serve.Gateway.Hosting;

if (args is [ClusterCertificate.Verb, ..])
{
    return ClusterCertificate.RunCommand(args);
}

// Gateway-only node: the HTTP endpoints and the registry; model replicas run on worker nodes.
var builder = WebApplication.CreateBuilder(args);
builder.AddServeConfiguration(args);
builder.AddServeGateway(defaultModel: false);
builder.Services.AddServeCluster(builder.Configuration, [ServeRoles.Gateway],
    (akka, services) => akka.WithServeGateway(services, hostsReplicas: false));

var app = builder.Build();
app.MapServeGateway();
app.Run();
return 0;

/// <summary>Entry point; public so tests can host the gateway in memory.</summary>
public partial class Program;
