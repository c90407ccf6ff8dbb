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

public sealed class ClusterTlsOptionsTests
{
    [Fact]
    public void Trusted_thumbprints_are_checked_and_read_as_openssl_prints_them()
    {
        const string Fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01";
        Assert.Equal("ABCDEF0123456789ABCDEF0123456789ABCDEF01", ClusterTlsOptions.Normalize(Fingerprint));

        var notOn = new ServeClusterOptions { Tls = new ClusterTlsOptions { TrustedThumbprints = [Fingerprint] } }.Validate();
        Assert.Contains(notOn, p => p.Contains("cluster TLS is off", StringComparison.Ordinal));

        var malformed = new ServeClusterOptions { Tls = new ClusterTlsOptions { TrustedThumbprints = ["not-a-thumbprint", "ABCD"] } }.Validate();
        Assert.Equal(2, malformed.Count(p => p.Contains("is not a certificate thumbprint", StringComparison.Ordinal)));
        Assert.DoesNotContain(new ServeClusterOptions { Tls = new ClusterTlsOptions { TrustedThumbprints = [Fingerprint] } }.Validate(),
            p => p.Contains("is not a certificate thumbprint", StringComparison.Ordinal));
    }
}

/// <summary>Sharding's settings come from one place (WithServeCluster's HOCON), for the region and its proxies alike.</summary>
public sealed class ShardingSettingsTests(ClusterFixture cluster) : IClassFixture<ClusterFixture>
{
    [Fact]
    public void Replicas_are_never_passivated_for_idling_nor_remembered_and_state_lives_in_distributed_data()
    {
        var settings = Akka.Cluster.Sharding.ClusterShardingSettings.Create(cluster.System);

        Assert.Equal(TimeSpan.Zero, settings.PassivateIdleEntityAfter);
        Assert.False(settings.RememberEntities);
        Assert.Equal(Akka.Cluster.Sharding.StateStoreMode.DData, settings.StateStoreMode);
    }
}
