using Akka.Actor;
using Akka.Hosting;
using Akka.Persistence.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serve.Actors.Hosting;

namespace Serve.Actors.Tests;

/// <summary>A one-node cluster on a free port, wired with the production builder extensions, with these roles
/// (default: gateway and worker). Plain akka.tcp: it never connects to another node.</summary>
public abstract class ClusterTestKit(string name, params string[] roles) : Akka.Hosting.TestKit.TestKit(name)
{
    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) =>
        builder
            .WithServeCluster(new ServeClusterOptions { Port = 0, Plaintext = true }, roles.Length > 0 ? roles : [ServeRoles.Gateway, ServeRoles.Worker])
            .WithInMemoryJournal()
            .WithInMemorySnapshotStore();
}

/// <summary>One actor system shared by a test class (for tests that only need its serializer).</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private IHost? _host;

    public ActorSystem System { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddAkka("fixture", (akka, _) =>
            akka.WithServeCluster(new ServeClusterOptions { Port = 0, Plaintext = true }, [ServeRoles.Gateway, ServeRoles.Worker]));
        _host = builder.Build();
        await _host.StartAsync();
        System = _host.Services.GetRequiredService<ActorSystem>();
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
        }
    }
}
