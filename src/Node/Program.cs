using Serve.Actors.Hosting;
using Serve.Gateway.Hosting;
using Serve.Node.Hosting;
using Serve.Node.Torch;

// A child started to load a model file once, so that a file which aborts libtorch cannot kill a worker.
if (args is [ModelPreflight.Switch, ..])
{
    return ModelPreflight.RunChild(args);
}

// One process, two shapes: the standalone server (gateway endpoints and a worker, the default), or a
// worker that joins a cluster (--role worker).
var role = new ConfigurationBuilder()
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .AddServeCommandLine(args)
    .Build()["Serve:Role"] ?? "standalone";
switch (role)
{
    case "standalone":
        var web = WebApplication.CreateBuilder(args);
        web.AddServeConfiguration(args);
        web.AddServeGateway(defaultModel: true);
        web.Services.AddServeWorker(web.Configuration);
        web.Services.AddServeCluster(web.Configuration, [ServeRoles.Gateway, ServeRoles.Worker], (akka, services) => akka
            .WithServeWorker(services, hostsRegistry: true)
            .WithServeGateway(services, hostsReplicas: true));
        var app = web.Build();
        app.MapServeGateway();
        await app.RunAsync();
        break;

    case "worker":
        var host = Host.CreateApplicationBuilder(args);
        host.AddServeConfiguration(args);
        host.Services.AddServeWorker(host.Configuration);
        host.Services.AddServeCluster(host.Configuration, [ServeRoles.Worker], (akka, services) => akka
            .WithServeWorker(services, hostsRegistry: false));
        await host.Build().RunAsync();
        break;

    default:
        await Console.Error.WriteLineAsync($"--role must be 'standalone' or 'worker', not '{role}'");
        return 2;
}

return 0;
