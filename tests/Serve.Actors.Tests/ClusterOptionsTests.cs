using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Serve.Actors.Hosting;

namespace Serve.Actors.Tests;

public sealed class ClusterOptionsTests
{
    [Fact]
    public async Task A_worker_without_seeds_is_refused_at_start_up()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Serve:Cluster:Port"] = "0" });
        builder.Services.AddServeCluster(builder.Configuration, [ServeRoles.Worker], (_, _) => { });
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains(error.Failures, f => f.Contains("needs Serve:Cluster:Seeds"));
    }

    [Fact]
    public void Seeds_must_name_the_cluster_system() =>
        Assert.Contains(new ServeClusterOptions { Seeds = ["akka.tcp://other@host:4053"] }.Validate(), p => p.Contains("akka.tcp://serve@"));
}
