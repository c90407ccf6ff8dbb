using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Remote.Transport.DotNetty;

namespace Serve.Cluster.Tests;

/// <summary>
/// What a process that reaches the cluster ports of a gateway and a worker can and cannot make them do. The
/// rogues are bare Akka.NET systems in the test process that know the system name and the actor paths.
/// </summary>
public sealed class ClusterPortTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    /// <summary>How long a rogue without the certificate keeps trying: longer than the one with it takes to get an answer.</summary>
    private static readonly TimeSpan RefusedWatch = TimeSpan.FromSeconds(8);

    /// <summary>The registry itself: singleton manager, singleton (its backoff supervisor), persistent actor.</summary>
    private const string RegistryPath = "/user/model-registry/model-registry/registry";
    private const string ReplicaRegionPath = "/system/sharding/model-replica";

    [Fact]
    public async Task Only_a_holder_of_the_cluster_certificate_reaches_the_registry_or_a_replica_and_json_frames_are_refused_even_then()
    {
        var token = TestContext.Current.CancellationToken;
        await using var cluster = await LocalCluster.StartAsync(workers: 1, "tiny=tiny.pt", store => TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt")));
        using var inference = cluster.InferenceClient(TimeSpan.FromSeconds(10));
        await Waiting.UntilAsync(async () => (await inference.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson), token)).IsSuccessStatusCode,
            Timeout, "tiny to serve on the worker", cluster.Diagnostics);
        var gateway = $"akka.ssl.tcp://serve@127.0.0.1:{cluster.ClusterPort}";
        var worker = $"akka.ssl.tcp://serve@127.0.0.1:{cluster.WorkerClusterPorts[0]}";

        // The control: with the cluster's certificate, the paths are right and both actors answer.
        using (var insider = Rogue(X509CertificateLoader.LoadPkcs12FromFile(cluster.CertificatePath, null)))
        {
            Assert.NotNull(await IdentifyAsync(insider, gateway + RegistryPath, Timeout));
            Assert.NotNull(await IdentifyAsync(insider, worker + ReplicaRegionPath, Timeout));

            // Even a holder cannot make a node instantiate a type it names: Akka's JSON serializer is gone.
            var target = insider.ActorSelection($"{gateway}/user/anything");
            await Waiting.UntilAsync(() =>
            {
                target.Tell(new Uri("file:///etc/passwd"));
                return cluster.Gateway.Logged("Refused a message written with Akka's JSON serializer");
            }, Timeout, "the gateway to log that it refused the JSON frame", () => cluster.Gateway.Tail());
            await insider.Terminate();
        }

        // Without it, over TLS with a certificate of its own or over plain akka.tcp, nothing is answered.
        using (var stranger = Rogue(SelfSigned("stranger")))
        {
            Assert.Null(await IdentifyAsync(stranger, gateway + RegistryPath, RefusedWatch));
            Assert.Null(await IdentifyAsync(stranger, worker + ReplicaRegionPath, RefusedWatch));
            await stranger.Terminate();
        }

        using (var plaintext = Rogue(certificate: null))
        {
            Assert.Null(await IdentifyAsync(plaintext, $"akka.tcp://serve@127.0.0.1:{cluster.ClusterPort}{RegistryPath}", RefusedWatch));
            Assert.Null(await IdentifyAsync(plaintext, $"akka.tcp://serve@127.0.0.1:{cluster.WorkerClusterPorts[0]}{ReplicaRegionPath}", RefusedWatch));
            await plaintext.Terminate();
        }

        Assert.False(cluster.Gateway.HasExited, cluster.Gateway.Tail());
        Assert.True((await inference.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson), token)).IsSuccessStatusCode);
    }

    /// <summary>
    /// A bare remote actor system; with a certificate it speaks TLS and presents it (and accepts any server's),
    /// without one it speaks plain akka.tcp. Anything not otherwise bound goes out through Akka's JSON serializer.
    /// </summary>
    private static ActorSystem Rogue(X509Certificate2? certificate)
    {
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0, enable-ssl = {{(certificate is null ? "false" : "true")}} }
            akka.remote.dot-netty.tcp.ssl.validate-certificate-hostname = false
            """);
        var setup = BootstrapSetup.Create().WithConfig(config);
        return certificate is null
            ? ActorSystem.Create("rogue", setup)
            : ActorSystem.Create("rogue", ActorSystemSetup.Create(setup, new DotNettySslSetup(certificate, suppressValidation: true)));
    }

    /// <summary>The actor at <paramref name="path"/>, asked again every second (the first ask may precede the connection); null if none answered.</summary>
    private static async Task<IActorRef?> IdentifyAsync(ActorSystem system, string path, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var identity = await system.ActorSelection(path).Ask<ActorIdentity>(new Identify(path), TimeSpan.FromSeconds(1));
                if (identity.Subject is not null)
                {
                    return identity.Subject;
                }
            }
            catch (AskTimeoutException)
            {
                // Not connected (yet, or never): ask again until the deadline.
            }
        }

        return null;
    }

    private static X509Certificate2 SelfSigned(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }
}
