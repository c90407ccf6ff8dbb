using Serve.Actors.Configuration;
using Serve.Actors.Hosting;
using Serve.Node.Hosting;
using Serve.Node.Torch;

// A child started to load a model file once, so that a file which aborts libtorch cannot kill a worker. It
// returns before RunWorkerAsync is compiled: the standalone host runs this dll as its preflight child from its
// own output folder, which has ASP.NET Core's copy of Microsoft.Extensions.Hosting, not the worker's.
if (args is [ModelPreflight.Switch, ..])
{
    return ModelPreflight.RunChild(args);
}

if (args is [ClusterCertificate.Verb, ..])
{
    return ClusterCertificate.RunCommand(args);
}

return await RunWorkerAsync(args);

// A worker node: model replicas on this machine's devices, in the cluster of the gateways it is seeded with.
static async Task<int> RunWorkerAsync(string[] args)
{
    var builder = Host.CreateApplicationBuilder(args);
    builder.AddServeConfiguration(args);
    builder.Services.AddServeWorker(builder.Configuration);
    builder.Services.AddServeCluster(builder.Configuration, [ServeRoles.Worker], (akka, services) => akka
        .WithServeWorker(services, hostsRegistry: false));
    await builder.Build().RunAsync();
    // 0, or ProcessPoisonWatcher.ExitCode when a broken device stopped the process.
    return Environment.ExitCode;
}
