using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace Serve.Cluster.Tests;

/// <summary>
/// Cluster TLS: on with no set-up (the founding gateway makes the certificate; a worker without a copy is
/// refused at start-up, one with a copy joins). A gateway and a worker holding the cluster's certificate form a
/// cluster over mutual TLS and serve; a worker with the next certificate joins mid-rotation (every node trusts
/// both); a worker with another certificate never becomes a member.
/// </summary>
public sealed class ClusterTlsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    /// <summary>How long the intruder is watched: longer than a worker with the right certificate takes to join here.</summary>
    private static readonly TimeSpan IntruderWatch = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task With_no_settings_the_gateway_makes_the_certificate_and_only_a_worker_given_a_copy_joins()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-cluster-tls-default-").FullName;
        try
        {
            TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));
            var data = Path.Combine(store, "data");
            var keys = KeyFiles.Write(Path.Combine(data, "key_file.json"));
            var ports = FreePorts.Take(8);
            // The short seed form: the scheme (akka.ssl.tcp) and system name are filled in.
            var seed = $"127.0.0.1:{ports[5]}";
            await using var gateway = ServeProcess.Start("gateway", ServeProcess.BuiltDll("Gateway", "Serve.Gateway.dll"),
                "--inference-address", $"http://127.0.0.1:{ports[0]}", "--management-address", $"http://127.0.0.1:{ports[1]}",
                "--metrics-address", $"http://127.0.0.1:{ports[2]}", "--grpc-inference-address", $"http://127.0.0.1:{ports[3]}",
                "--grpc-management-address", $"http://127.0.0.1:{ports[4]}", "--cluster-port", Port(ports[5]), "--seed", seed,
                "--model-store", store, "--models", "tiny=tiny.pt", "--data-dir", data);
            var certificate = Path.Combine(data, "cluster.p12");
            await Waiting.UntilAsync(() => gateway.Logged($"Created the cluster certificate {certificate}"), Timeout,
                "the gateway to create the cluster certificate", () => gateway.Tail());

            // A worker with nothing set has no certificate in its own data directory: refused, with what to do.
            await using var bare = ServeProcess.Start("bare-worker", ServeProcess.BuiltDll("Node", "Serve.Node.dll"),
                "--cluster-port", Port(ports[6]), "--seed", seed, "--model-store", store, "--data-dir", Path.Combine(store, "bare"));
            Assert.NotEqual(0, await bare.ExitCodeAsync(Timeout));
            Assert.True(bare.Logged("has no cluster certificate at"), bare.Tail());

            await using var worker = ServeProcess.Start("worker", ServeProcess.BuiltDll("Node", "Serve.Node.dll"),
                new Dictionary<string, string> { ["Serve__Cluster__Tls__Keystore"] = certificate },
                "--cluster-port", Port(ports[7]), "--seed", seed, "--model-store", store);
            using var inference = KeyFiles.Client(new Uri($"http://127.0.0.1:{ports[0]}"), keys.Inference, TimeSpan.FromSeconds(30));
            await Waiting.UntilAsync(async () => (await inference.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson), token)).IsSuccessStatusCode,
                Timeout, "tiny to serve on the worker holding the gateway's certificate", () => gateway.Tail() + worker.Tail());
            Assert.True(gateway.Logged("runs mutual TLS"), gateway.Tail());
            Assert.False(gateway.Logged("Cluster TLS is OFF"), gateway.Tail());
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    [Fact]
    public async Task Only_nodes_with_a_certificate_the_cluster_trusts_join()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-cluster-tls-").FullName;
        try
        {
            TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));
            var (cluster, clusterThumbprint) = WriteCertificate(Path.Combine(store, "cluster.p12"), "cluster");
            var (next, nextThumbprint) = WriteCertificate(Path.Combine(store, "next.p12"), "next");
            var (other, _) = WriteCertificate(Path.Combine(store, "other.p12"), "intruder");
            var keys = KeyFiles.Write(Path.Combine(store, "data", "key_file.json"));
            var ports = FreePorts.Take(9);
            var seed = $"akka.ssl.tcp://serve@127.0.0.1:{ports[5]}";
            // Mid-rotation: the cluster's nodes already trust the next certificate, the rotated node still the old one.
            Dictionary<string, string> Tls(string keystore, string? trusted = null)
            {
                var settings = new Dictionary<string, string>
                {
                    ["Serve__Cluster__Tls__Keystore"] = keystore,
                    ["Serve__Cluster__Tls__KeystorePassword"] = "secret",
                    ["Serve__Node__Name"] = Path.GetFileNameWithoutExtension(keystore),
                };
                if (trusted is not null)
                {
                    settings["Serve__Cluster__Tls__TrustedThumbprints__0"] = trusted;
                }

                return settings;
            }

            await using var gateway = ServeProcess.Start("gateway", ServeProcess.BuiltDll("Gateway", "Serve.Gateway.dll"), Tls(cluster, nextThumbprint),
                "--inference-address", $"http://127.0.0.1:{ports[0]}", "--management-address", $"http://127.0.0.1:{ports[1]}",
                "--metrics-address", $"http://127.0.0.1:{ports[2]}", "--grpc-inference-address", $"http://127.0.0.1:{ports[3]}",
                "--grpc-management-address", $"http://127.0.0.1:{ports[4]}", "--cluster-port", Port(ports[5]), "--seed", seed,
                "--model-store", store, "--models", "tiny=tiny.pt", "--data-dir", Path.Combine(store, "data"));
            await using var worker = ServeProcess.Start("worker", ServeProcess.BuiltDll("Node", "Serve.Node.dll"), Tls(cluster, nextThumbprint),
                "--cluster-port", Port(ports[6]), "--seed", seed, "--model-store", store);

            using var inference = KeyFiles.Client(new Uri($"http://127.0.0.1:{ports[0]}"), keys.Inference, TimeSpan.FromSeconds(30));
            using var management = KeyFiles.Client(new Uri($"http://127.0.0.1:{ports[1]}"), keys.Management, TimeSpan.FromSeconds(30));
            var joined = Stopwatch.StartNew();
            await Waiting.UntilAsync(async () => (await inference.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson), token)).IsSuccessStatusCode,
                Timeout, "tiny to serve on the worker over cluster TLS", () => gateway.Tail() + worker.Tail());
            output.WriteLine($"the worker with the cluster's certificate joined and served within {joined.Elapsed.TotalSeconds:0.0} s");

            await using var rotated = ServeProcess.Start("rotated", ServeProcess.BuiltDll("Node", "Serve.Node.dll"), Tls(next, clusterThumbprint),
                "--cluster-port", Port(ports[8]), "--seed", seed, "--model-store", store);
            await Waiting.UntilAsync(async () => await MemberStatusAsync(management, ports[8], token) == "Up", Timeout,
                "the worker with the next certificate to be Up", () => gateway.Tail() + rotated.Tail());

            await using var intruder = ServeProcess.Start("intruder", ServeProcess.BuiltDll("Node", "Serve.Node.dll"), Tls(other),
                "--cluster-port", Port(ports[7]), "--seed", seed, "--model-store", store);
            var watch = Stopwatch.StartNew();
            while (watch.Elapsed < IntruderWatch)
            {
                Assert.DoesNotContain(ports[7].ToString(CultureInfo.InvariantCulture), await MembersAsync(management, token));
                await Task.Delay(TimeSpan.FromMilliseconds(500), token);
            }

            // It did try: its TLS handshake with the seed was refused (it may give up and exit).
            Assert.True(intruder.Logged("AssociationError"), intruder.Tail());
            Assert.Contains(ports[6].ToString(CultureInfo.InvariantCulture), await MembersAsync(management, token));
            // Heartbeats between the two workers pass too (each trusts the other's certificate): still Up, not unreachable.
            Assert.Equal("Up", await MemberStatusAsync(management, ports[8], token));
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    private static async Task<string> MembersAsync(HttpClient management, CancellationToken token)
    {
        using var cluster = JsonDocument.Parse(await management.GetStringAsync("/cluster", token));
        return string.Join(" ", cluster.RootElement.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("address").GetString()));
    }

    /// <summary>The member on this cluster port's status ("Up", "Unreachable", ...), else null.</summary>
    private static async Task<string?> MemberStatusAsync(HttpClient management, int port, CancellationToken token)
    {
        using var cluster = JsonDocument.Parse(await management.GetStringAsync("/cluster", token));
        return cluster.RootElement.GetProperty("members").EnumerateArray()
            .Where(m => m.GetProperty("address").GetString()!.EndsWith($":{Port(port)}", StringComparison.Ordinal))
            .Select(m => m.GetProperty("status").GetString())
            .FirstOrDefault();
    }

    /// <summary>A self-signed PKCS#12 file and its thumbprint, as openssl prints fingerprints (colon-separated).</summary>
    private static (string Path, string Thumbprint) WriteCertificate(string path, string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pkcs12, "secret"));
        return (path, string.Join(':', certificate.Thumbprint.Chunk(2).Select(pair => new string(pair))));
    }

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
