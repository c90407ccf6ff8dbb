using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Grpc.Net.Client;
using Serve.Gateway.Grpc.TorchServe;

namespace Serve.Cluster.Tests;

/// <summary>
/// TLS on the listeners, from TorchServe's own config keys: a real standalone server over a certificate the
/// test makes, answering HTTPS and gRPC over TLS, and nothing in plaintext on those ports.
/// </summary>
public sealed class TlsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Https_and_grpc_over_tls_answer_and_plaintext_gets_nothing()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-tls-").FullName;
        try
        {
            TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt"));
            using var certificate = SelfSigned(Path.Combine(store, "cert.pem"), Path.Combine(store, "key.pem"));
            var keys = KeyFiles.Write(Path.Combine(store, "data", "key_file.json"));
            var ports = FreePorts.Take(5);
            var config = Path.Combine(store, "config.properties");
            await File.WriteAllTextAsync(config, $"""
                inference_address=https://127.0.0.1:{ports[0]}
                management_address=https://127.0.0.1:{ports[1]}
                metrics_address=http://127.0.0.1:{ports[2]}
                enable_grpc_ssl=true
                grpc_inference_port={ports[3]}
                grpc_management_port={ports[4]}
                certificate_file={Path.Combine(store, "cert.pem")}
                private_key_file={Path.Combine(store, "key.pem")}
                model_store={store}
                load_models=tiny=tiny.pt
                """, token);
            await using var server = ServeProcess.Start("standalone", ServeProcess.BuiltDll("Standalone", "Serve.Standalone.dll"),
                "--ts-config", config, "--cluster-port", "0", "--data-dir", Path.Combine(store, "data"));

            // Clients trust exactly this certificate, as a client given the server's certificate would.
            SocketsHttpHandler Trusting() => new()
            {
                SslOptions = { RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == certificate.GetCertHashString() },
            };
            using var https = new HttpClient(Trusting()) { BaseAddress = new Uri($"https://127.0.0.1:{ports[0]}"), Timeout = Timeout };
            https.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", keys.Inference);
            await Waiting.UntilAsync(async () =>
            {
                try
                {
                    return (await https.GetAsync("/v2/models/tiny/ready", token)).IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, Timeout, "tiny to serve over HTTPS", () => server.Tail());
            using var predicted = await https.PostAsync("/predictions/tiny", new StringContent(TestModels.OnesJson), token);
            Assert.Equal(HttpStatusCode.OK, predicted.StatusCode);

            using var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{ports[3]}", new GrpcChannelOptions { HttpHandler = Trusting() });
            var ping = await new InferenceAPIsService.InferenceAPIsServiceClient(channel).PingAsync(new Empty(),
                new Grpc.Core.Metadata { { "authorization", "Bearer " + keys.Inference } }, cancellationToken: token);
            Assert.Equal("Healthy", JsonDocument.Parse(ping.Health).RootElement.GetProperty("status").GetString());

            // Plaintext to a TLS port gets no answer: no silent downgrade.
            using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetAsync($"http://127.0.0.1:{ports[0]}/ping", token));
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetAsync($"http://127.0.0.1:{ports[1]}/models", token));

            // An untrusting client refuses the self-signed certificate: the server does present TLS, not plaintext.
            using var untrusting = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => untrusting.GetAsync($"https://127.0.0.1:{ports[0]}/ping", token));
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    [Fact]
    public async Task A_tls_listener_without_a_usable_certificate_stops_the_start()
    {
        var token = TestContext.Current.CancellationToken;
        var store = Directory.CreateTempSubdirectory("serve-tls-").FullName;
        try
        {
            var config = Path.Combine(store, "config.properties");
            await File.WriteAllTextAsync(config,
                "inference_address=https://127.0.0.1:0\ncertificate_file=/nonexistent/cert.pem\nprivate_key_file=/nonexistent/key.pem\n", token);
            await using var server = ServeProcess.Start("standalone", ServeProcess.BuiltDll("Standalone", "Serve.Standalone.dll"),
                new Dictionary<string, string> { ["TS_CONFIG_FILE"] = config },
                "--cluster-port", "0", "--data-dir", Path.Combine(store, "data"));
            await Waiting.UntilAsync(() => server.HasExited, Timeout, "the server to refuse to start", () => server.Tail());
            Assert.True(server.Logged("the TLS certificate could not be loaded from /nonexistent/cert.pem"), server.Tail());
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }

    /// <summary>A self-signed certificate for 127.0.0.1 and localhost, written as TorchServe's PEM files.</summary>
    private static X509Certificate2 SelfSigned(string certificateFile, string keyFile)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=serve-test", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(certificateFile, certificate.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        return certificate;
    }
}
