using Serve.Actors.Configuration;
using System.IO.Compression;
using System.Net;
using System.Text;
using Microsoft.Extensions.Configuration;
using Serve.Archive;
using Serve.Gateway.Hosting;

namespace Serve.Standalone.Tests;

/// <summary>
/// A server that accepts only archives signed by its trusted key (Serve:Archives): signed archives register
/// and serve; unsigned, tampered and foreign ones, and bare model files, get a 400 that says why and leave
/// nothing registered or unpacked. A sha256 pin is checked on the file before anything is unpacked.
/// </summary>
public sealed class ArchiveSigningTests(ArchiveSigningTests.Factory serve) : IClassFixture<ArchiveSigningTests.Factory>
{
    public sealed class Factory : ServeFactory
    {
        public string TrustedKeyFile => Path.Combine(StorePath, "trusted.pub.pem");

        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            new("Serve:LoadModels", "startup.mar"),
            new("Serve:EnableModelApi", "true"),
            new("Serve:Archives:RequireSigned", "true"),
            new("Serve:Archives:TrustedKeys:0", TrustedKeyFile),
        ];

        protected override void PrepareModelStore(string store)
        {
            using var trusted = SigningKey.Create(SignatureAlgorithms.EcdsaP256);
            using var stranger = SigningKey.Create(SignatureAlgorithms.EcdsaP256);
            File.WriteAllText(TrustedKeyFile, trusted.PublicKeyPem());

            void Write(string file, string name, SigningKey? signer) =>
                ArchiveRegistrationTests.Factory.WriteArchive(store, file, name, "tensor", "minWorkers: 1\n", signer: signer);

            Write("startup.mar", "signed-startup", trusted);
            Write("signed.mar", "signed", trusted);
            Write("unsigned.mar", "unsigned", null);
            Write("stranger.mar", "stranger", stranger);
            Write("tampered.mar", "tampered", trusted);
            HostileArchives.FlipOneBit(Path.Combine(store, "tampered.mar"), "identity.pt");
            ZipFile.ExtractToDirectory(Path.Combine(store, "signed.mar"), Path.Combine(store, "signed-dir"));
            ZipFile.ExtractToDirectory(Path.Combine(store, "unsigned.mar"), Path.Combine(store, "unsigned-dir"));
        }
    }

    private string[] Unpacked() => ArchiveRegistrationTests.Unpacked(serve.ModelStore);

    private string Sha256Of(string file) => ArchivePin.Sha256(Path.Combine(serve.ModelStore, file));

    [Fact]
    public async Task A_signed_archive_registers_and_serves()
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=signed.mar&model_name=signed-served&initial_workers=1");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));

        using var inference = serve.Inference();
        using var response = await inference.PostAsync("/predictions/signed-served",
            new StringContent("[[3.0]]", Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal("[[3]]", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_signed_start_up_archive_serves() => await serve.WaitReadyAsync("signed-startup");

    [Fact]
    public async Task A_signed_archive_directory_registers()
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=signed-dir&model_name=signed-directory&initial_workers=0");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
    }

    [Theory]
    [InlineData("unsigned.mar", "unsigned.mar: the archive is not signed (it has no MAR-INF/SIGNATURE.json) and this server accepts only signed archives")]
    [InlineData("unsigned-dir", "unsigned-dir: the archive is not signed")]
    [InlineData("tampered.mar", "tampered.mar: the archive's content does not match its signature by key")]
    [InlineData("stranger.mar", "which is not a trusted key of this server; add the signer's public key to Serve:Archives:TrustedKeys")]
    [InlineData("identity.pt", "identity.pt: a bare TorchScript file cannot carry a signature, and this server accepts only signed archives")]
    public async Task Unsigned_tampered_and_foreign_models_get_a_400_with_the_reason_and_leave_nothing_behind(string file, string message)
    {
        // The start-up archive is unpacked while the server starts; count it in before comparing.
        await serve.WaitReadyAsync("signed-startup");
        var before = Unpacked();
        var name = "refused-" + Path.GetFileNameWithoutExtension(file);

        var (status, body) = await serve.ManageAsync(HttpMethod.Post, $"/models?url={file}&model_name={name}&initial_workers=1");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, Json.Message(body), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", Json.Message(body), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await serve.ManageAsync(HttpMethod.Get, $"/models/{name}")).Status);
        Assert.Equal(before, Unpacked());
    }

    [Fact]
    public async Task A_sha256_pin_that_does_not_match_is_refused_before_unpacking_and_a_matching_one_registers()
    {
        await serve.WaitReadyAsync("signed-startup");
        var before = Unpacked();
        var actual = Sha256Of("signed.mar");
        var wrong = Sha256Of("unsigned.mar");

        var (status, body) = await serve.ManageAsync(HttpMethod.Post, $"/models?url=signed.mar&model_name=pinned-wrong&sha256={wrong}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal($"signed.mar: the file does not match the sha256 given for it: its SHA-256 is {actual}, the sha256 given is {wrong}; " +
                     "it is not the file that was pinned (replaced or corrupted?)", Json.Message(body));
        Assert.Equal(before, Unpacked());

        (status, body) = await serve.ManageAsync(HttpMethod.Post, $"/models?url=signed.mar&model_name=pinned&initial_workers=0&sha256={actual}");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));

        // The same parameter in a JSON body, in capitals.
        (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models",
            Json.Body($$"""{"url": "signed.mar", "model_name": "pinned-json", "initial_workers": 0, "sha256": "{{actual.ToUpperInvariant()}}"}"""));
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
    }

    [Theory]
    [InlineData("sha256=abc", "sha256 must be the file's SHA-256 as 64 hexadecimal digits, not 'abc'")]
    [InlineData("url=signed-dir&sha256=0000000000000000000000000000000000000000000000000000000000000000",
        "sha256 pins a file (a .mar or a TorchScript file), and this is an archive directory")]
    public async Task A_sha256_that_cannot_pin_is_a_400(string query, string message)
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, $"/models?model_name=badly-pinned&{(query.StartsWith("url=", StringComparison.Ordinal) ? query : "url=signed.mar&" + query)}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, Json.Message(body), StringComparison.Ordinal);
    }
}

/// <summary>Serve:Archives read from configuration and checked at start-up, before anything listens.</summary>
public sealed class ArchiveTrustOptionsTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("serve-trust-options-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    private static IReadOnlyList<string> Problems(ArchiveTrustOptions archives) =>
        ServeGatewayExtensions.ValidateGateway(new GatewayOptions { Archives = archives }, new Serve.Actors.Hosting.ServeClusterOptions().MaximumPayloadBytes);

    [Fact]
    public void Binds_from_the_environment_variable_form_and_loads_the_keys()
    {
        using var key = SigningKey.Create(SignatureAlgorithms.Ed25519);
        var file = Path.Combine(_work, "trusted.pub.pem");
        File.WriteAllText(file, key.PublicKeyPem());
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            // What Serve__Archives__RequireSigned and Serve__Archives__TrustedKeys__0 become.
            ["Serve:Archives:RequireSigned"] = "true",
            ["Serve:Archives:TrustedKeys:0"] = file,
        }).Build();

        var options = configuration.GetSection(GatewayOptions.Section).Get<GatewayOptions>()!;
        Assert.Empty(Problems(options.Archives));
        var trust = options.Archives.Load();
        Assert.True(trust.RequireSigned);
        Assert.Equal(key.Id, Assert.Single(trust.Keys).Id);
        Assert.Empty(Problems(new ArchiveTrustOptions()));
    }

    [Fact]
    public void Key_files_that_are_missing_or_not_keys_and_signatures_required_without_keys_stop_the_start()
    {
        var garbage = Path.Combine(_work, "garbage.pem");
        File.WriteAllText(garbage, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
        var missing = Path.Combine(_work, "missing.pem");

        var problems = Problems(new ArchiveTrustOptions { TrustedKeys = [missing, garbage] });
        Assert.Equal(2, problems.Count);
        Assert.Equal($"Serve:Archives:TrustedKeys: the public key file '{missing}' does not exist", problems[0]);
        Assert.StartsWith($"Serve:Archives:TrustedKeys: {garbage} is not a public key Serve can use", problems[1], StringComparison.Ordinal);

        Assert.Equal(["Serve:Archives:RequireSigned is true but Serve:Archives:TrustedKeys names no public key, so no archive could be " +
                      "registered: add the signers' public keys (PEM files), or set RequireSigned to false"],
            Problems(new ArchiveTrustOptions { RequireSigned = true }));
    }

    [Fact]
    public void Torchserve_config_properties_require_signed_archives_maps_to_require_signed()
    {
        var result = TorchServeConfig.Translate("config.properties", new Dictionary<string, string> { ["require_signed_archives"] = "true" }, _ => null);
        Assert.Empty(result.Problems);
        Assert.Equal("true", result.Settings["Serve:Archives:RequireSigned"]);
    }
}
