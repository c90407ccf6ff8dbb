using Serve.Archive;
using Serve.Archiver;

namespace Serve.Archive.Tests;

/// <summary>serve-archiver, run in-process: what it writes, what it refuses and what it prints.</summary>
public sealed class ArchiverCommandTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("serve-archiver-tests-").FullName;

    public ArchiverCommandTests()
    {
        File.WriteAllBytes(PathOf("model.pt"), new byte[3 << 20]);
        File.WriteAllText(PathOf("index_to_name.json"), """{"0": "cat", "1": "dog"}""");
        File.WriteAllText(PathOf("model-config.yaml"), "minWorkers: 2\nbatchSize: 4\nmaxBatchDelay: 20\n");
    }

    public void Dispose() => Directory.Delete(_work, recursive: true);

    private string PathOf(string name) => Path.Combine(_work, name);

    private (int Code, string Output, string Errors) Archive(params string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = ArchiverCommand.Run(args, output, errors, interactive: false);
        return (code, output.ToString(), errors.ToString());
    }

    private string[] Valid(params string[] more) =>
    [
        "--model-name", "classifier", "--version", "2.0", "--serialized-file", PathOf("model.pt"), "--handler", "image_classifier",
        "--config-file", PathOf("model-config.yaml"), "--extra-files", PathOf("index_to_name.json"), "--export-path", _work, .. more,
    ];

    [Fact]
    public void Makes_a_mar_that_serve_opens_with_its_settings_and_shows_progress()
    {
        var (code, output, errors) = Archive(Valid());
        Assert.True(code == 0, errors);
        var archive = PathOf("classifier.mar");
        Assert.Equal(archive, output.Trim());

        SafeZip.Extract(archive, PathOf("unpacked"), ArchiveLimits.Default);
        var opened = ModelArchive.Open(PathOf("unpacked"));
        Assert.Equal(("classifier", "2.0", "image_classifier"),
            (opened.Manifest.Model.ModelName, opened.Manifest.Model.ModelVersion, opened.Manifest.Model.Handler));
        Assert.Equal("index_to_name.json", opened.LabelsFile);
        Assert.Equal((2, 4, 20), (opened.Settings.MinWorkers, opened.Settings.BatchSize, opened.Settings.MaxBatchDelay));

        // Without a terminal, progress is at most a line per 10% step, ending at 100%.
        var lines = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length >= 3, errors);
        Assert.StartsWith("classifier.mar: 100%", lines[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void Makes_an_unpacked_directory_with_no_archive_and_refuses_to_overwrite_without_force()
    {
        var (code, _, errors) = Archive(Valid("--archive-format", "no-archive"));
        Assert.True(code == 0, errors);
        var opened = ModelArchive.Open(PathOf("classifier"));
        Assert.Equal("model.pt", opened.SerializedFile);
        Assert.False(Directory.Exists(PathOf("classifier.partial")));

        (code, _, errors) = Archive(Valid("--archive-format", "no-archive"));
        Assert.Equal(1, code);
        Assert.Contains("exists; use --force to replace it", errors, StringComparison.Ordinal);

        (code, _, errors) = Archive(Valid("--archive-format", "no-archive", "-f"));
        Assert.True(code == 0, errors);
    }

    [Theory]
    [InlineData("--handler", "my_handler.py", "--handler: handler 'my_handler.py' is Python code; Serve never runs code from a model archive")]
    [InlineData("--handler", "text_generator", "--handler: handler 'text_generator' is not a built-in handler")]
    [InlineData("--model-file", "model.py", "--model-file model.py: Serve never runs Python from an archive")]
    [InlineData("--requirements-file", "requirements.txt", "--requirements-file: Serve installs no Python packages")]
    [InlineData("--serialized-file", "model.onnx", "--serialized-file model.onnx is not TorchScript")]
    [InlineData("--model-name", "../escape", "--model-name '../escape' is invalid")]
    [InlineData("--archive-format", "tgz", "--archive-format must be default or no-archive, not 'tgz'")]
    [InlineData("--extra-files", "missing.json", "missing.json does not exist")]
    [InlineData("--colour", "blue", "Unrecognized command or argument '--colour'")]
    public void Refuses_what_serve_would_refuse_and_writes_nothing(string option, string value, string message)
    {
        var args = Valid().ToList();
        var at = args.IndexOf(option);
        if (at >= 0)
        {
            args[at + 1] = value;
        }
        else
        {
            args.AddRange([option, value]);
        }

        var (code, output, errors) = Archive([.. args]);
        Assert.Equal(1, code);
        Assert.Empty(output);
        Assert.Contains(message, errors, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_work, "*.mar*"));
    }

    [Fact]
    public void A_bad_model_config_is_refused_before_anything_is_written()
    {
        File.WriteAllText(PathOf("model-config.yaml"), "batchSize: many\n");
        var (code, _, errors) = Archive(Valid());
        Assert.Equal(1, code);
        Assert.Contains("batchSize", errors, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_work, "*.mar*"));
    }

    [Theory]
    [InlineData("default")]
    [InlineData("no-archive")]
    public void Sign_key_writes_a_signature_that_verifies_against_the_public_key(string format)
    {
        var (code, output, errors) = Archive("keygen", "--out", PathOf("signer"));
        Assert.True(code == 0, errors);
        var trusted = TrustedKey.Load(PathOf("signer.pub.pem"));
        Assert.Contains($"public key {trusted.Id}", output, StringComparison.Ordinal);

        (code, output, errors) = Archive(Valid("--archive-format", format, "--sign-key", PathOf("signer.key.pem")));
        Assert.True(code == 0, errors);
        var unpacked = output.Trim();
        if (format == "default")
        {
            SafeZip.Extract(unpacked, PathOf("unpacked"), ArchiveLimits.Default);
            unpacked = PathOf("unpacked");
        }

        Assert.Equal(trusted.Id, new ArchiveTrust(RequireSigned: true, [trusted]).Verify(unpacked)?.Id);
    }

    [Fact]
    public void Keygen_writes_an_owner_only_private_key_and_never_replaces_a_key()
    {
        var (code, _, errors) = Archive("keygen", "--out", PathOf("ed"), "--algorithm", SignatureAlgorithms.Ed25519);
        Assert.True(code == 0, errors);
        using (var key = SigningKey.Load(PathOf("ed.key.pem")))
        {
            Assert.Equal((SignatureAlgorithms.Ed25519, TrustedKey.Load(PathOf("ed.pub.pem")).Id), (key.Algorithm, key.Id));
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(PathOf("ed.key.pem")));
        }

        var before = File.ReadAllText(PathOf("ed.key.pem"));
        (code, _, errors) = Archive("keygen", "--out", PathOf("ed"));
        Assert.Equal(1, code);
        Assert.Contains("ed.key.pem exists; keygen never replaces a key", errors, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllText(PathOf("ed.key.pem")));

        (code, _, errors) = Archive("keygen", "--out", PathOf("rsa"), "--algorithm", "RSA");
        Assert.Equal(1, code);
        Assert.Contains("algorithm 'RSA' is not supported", errors, StringComparison.Ordinal);
        Assert.False(File.Exists(PathOf("rsa.key.pem")));
    }

    [Theory]
    [InlineData("missing.pem", "the private key file")]
    [InlineData("index_to_name.json", "is not a PEM private key Serve can use")]
    [InlineData("public.pem", "is not a PEM private key Serve can use (it holds a PUBLIC KEY)")]
    public void A_sign_key_that_cannot_sign_writes_nothing(string key, string message)
    {
        using (var signer = SigningKey.Create(SignatureAlgorithms.EcdsaP256))
        {
            File.WriteAllText(PathOf("public.pem"), signer.PublicKeyPem());
        }

        var (code, output, errors) = Archive(Valid("--sign-key", PathOf(key)));
        Assert.Equal(1, code);
        Assert.Empty(output);
        Assert.Contains(message, errors, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_work, "*.mar*"));
    }

    [Fact]
    public void Help_lists_the_built_in_handlers()
    {
        var (code, output, _) = Archive("--help");
        Assert.Equal(0, code);
        Assert.Contains("--handler", output, StringComparison.Ordinal);
        Assert.Contains("a built-in handler: tensor, image_classifier, text_classifier, object_detector, image_segmenter", output, StringComparison.Ordinal);
        Assert.Contains("keygen", output, StringComparison.Ordinal);
        Assert.Equal(2, Archive().Code);
    }

    [Fact]
    public void A_missing_option_is_named_and_nothing_is_written()
    {
        var args = Valid().ToList();
        args.RemoveRange(args.IndexOf("--handler"), 2);
        var (code, output, errors) = Archive([.. args]);
        Assert.Equal(1, code);
        Assert.Empty(output);
        Assert.Contains("Option '--handler' is required", errors, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_work, "*.mar*"));
    }

    [Fact]
    public void The_archiver_depends_on_the_archive_library_alone()
    {
        var references = typeof(ArchiverCommand).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.Contains("Serve.Archive", references);
        Assert.DoesNotContain(references, name => name.StartsWith("Akka", StringComparison.Ordinal) || name == "Serve.Actors");
    }
}
