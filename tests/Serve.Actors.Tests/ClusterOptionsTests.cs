using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Serve.Actors.Configuration;
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
        Assert.Contains(new ServeClusterOptions { Seeds = ["akka.tcp://other@host:4053"], Plaintext = true }.Validate(), p => p.Contains("akka.tcp://serve@"));

    [Fact]
    public void A_seed_given_as_host_and_port_gets_the_clusters_scheme_and_system_name()
    {
        Assert.Equal(["akka.ssl.tcp://serve@10.0.0.1:4053"], new ServeClusterOptions { Seeds = ["10.0.0.1:4053"] }.SeedAddresses);
        Assert.Equal(["akka.tcp://serve@10.0.0.1:4053"], new ServeClusterOptions { Seeds = ["10.0.0.1:4053"], Plaintext = true }.SeedAddresses);
    }

    [Fact]
    public void Remembered_members_follow_the_configured_seeds_and_never_name_this_node()
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("serve-members-").FullName, KnownMembers.DefaultFileName);
        var options = new ServeClusterOptions { Port = 4053, Seeds = ["127.0.0.1:4053"], MembersFile = file };
        Assert.Equal(["akka.ssl.tcp://serve@127.0.0.1:4053"], KnownMembers.SeedsWithRemembered(options));

        KnownMembers.Write(file, ["akka.ssl.tcp://serve@127.0.0.1:5001", "akka.ssl.tcp://serve@127.0.0.1:4053"]);
        Assert.Equal(["akka.ssl.tcp://serve@127.0.0.1:4053", "akka.ssl.tcp://serve@127.0.0.1:5001"], KnownMembers.SeedsWithRemembered(options));

        // Only a hint: a damaged file is as good as none.
        File.WriteAllText(file, "{not json");
        Assert.Equal(["akka.ssl.tcp://serve@127.0.0.1:4053"], KnownMembers.SeedsWithRemembered(options));
        Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
    }

    [Fact]
    public void The_cluster_plaintext_switch_is_the_opt_out_and_nothing_else_turns_tls_off()
    {
        static ServeClusterOptions Bound(params string[] args) =>
            new ConfigurationBuilder().AddServeCommandLine(args).Build()
                .GetSection(ServeClusterOptions.Section).Get<ServeClusterOptions>() ?? new ServeClusterOptions();

        Assert.True(Bound("--cluster-plaintext", "--cluster-port", "4060").Plaintext);
        Assert.Equal(4060, Bound("--cluster-plaintext", "--cluster-port", "4060").Port);
        Assert.False(Bound("--cluster-port", "4060").Plaintext);
        Assert.Equal("akka.ssl.tcp", Bound().Protocol);
    }

    [Fact]
    public void A_plaintext_seed_is_refused_while_cluster_tls_is_on_naming_the_opt_out() =>
        Assert.Contains(new ServeClusterOptions { Seeds = ["akka.tcp://serve@10.0.0.1:4053"] }.Validate(),
            p => p.Contains("akka.ssl.tcp://serve@host:port", StringComparison.Ordinal) && p.Contains("Serve:Cluster:Plaintext=true", StringComparison.Ordinal));
}

/// <summary>Cluster TLS with no set-up: the founding node makes the certificate, a joining node is told what to copy.</summary>
public sealed class ClusterCertificateProvisionTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("serve-cluster-cert-").FullName;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public void The_founding_node_creates_an_owner_only_certificate_once_and_keeps_it()
    {
        var options = new ServeClusterOptions { Port = 4053, Seeds = ["127.0.0.1:4053"] };
        var provision = new ClusterCertificateProvision();
        provision.Provide(options, _data, gateway: true);

        var path = Path.Combine(_data, ClusterCertificate.DefaultFileName);
        Assert.Equal(path, options.Tls.Keystore);
        Assert.Equal(path, provision.Created);
        Assert.Empty(options.Validate());
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        using var first = options.Tls.Load();
        Assert.True(first.HasPrivateKey);

        var again = new ServeClusterOptions { Port = 4053 };
        var second = new ClusterCertificateProvision();
        second.Provide(again, _data, gateway: true);
        Assert.Null(second.Created);
        using var kept = again.Tls.Load();
        Assert.Equal(first.Thumbprint, kept.Thumbprint);
    }

    [Fact]
    public void A_joining_node_never_makes_its_own_and_is_told_what_to_copy()
    {
        var options = new ServeClusterOptions { Port = 4054, Seeds = ["127.0.0.1:4053"] };
        new ClusterCertificateProvision().Provide(options, _data, gateway: true);
        var worker = new ServeClusterOptions { Port = 4053 };
        new ClusterCertificateProvision().Provide(worker, _data, gateway: false);

        Assert.False(File.Exists(Path.Combine(_data, ClusterCertificate.DefaultFileName)));
        Assert.Contains(options.Validate(), p => p.Contains("has no cluster certificate at", StringComparison.Ordinal)
                                                 && p.Contains(ClusterCertificate.Verb, StringComparison.Ordinal));
    }

    [Fact]
    public void Plaintext_needs_no_certificate_and_a_configured_keystore_is_made_only_by_the_founder_and_never_replaced()
    {
        var plaintext = new ServeClusterOptions { Plaintext = true };
        new ClusterCertificateProvision().Provide(plaintext, _data, gateway: true);
        Assert.Null(plaintext.Tls.Keystore);
        Assert.Empty(plaintext.Validate());

        var shared = Path.Combine(_data, "shared", "cluster.p12");
        var joining = new ServeClusterOptions { Port = 4054, Seeds = ["127.0.0.1:4053"], Tls = new ClusterTlsOptions { Keystore = shared } };
        new ClusterCertificateProvision().Provide(joining, _data, gateway: false);
        Assert.False(File.Exists(shared));
        Assert.Contains(joining.Validate(), p => p.Contains("has no cluster certificate at", StringComparison.Ordinal));

        var founding = new ServeClusterOptions { Tls = new ClusterTlsOptions { Keystore = shared } };
        new ClusterCertificateProvision().Provide(founding, _data, gateway: true);
        Assert.Equal(shared, founding.Tls.Keystore);
        using var made = founding.Tls.Load();
        new ClusterCertificateProvision().Provide(founding, _data, gateway: true);
        using var kept = founding.Tls.Load();
        Assert.Equal(made.Thumbprint, kept.Thumbprint);
        Assert.Empty(joining.Validate());
    }
}

public sealed class ClusterTlsOptionsTests
{
    [Fact]
    public void Trusted_thumbprints_are_checked_and_read_as_openssl_prints_them()
    {
        const string Fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01";
        Assert.Equal("ABCDEF0123456789ABCDEF0123456789ABCDEF01", ClusterTlsOptions.Normalize(Fingerprint));

        var notOn = new ServeClusterOptions { Plaintext = true, Tls = new ClusterTlsOptions { TrustedThumbprints = [Fingerprint] } }.Validate();
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
