using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json;
using Serve.Archive;
using Serve.Gateway.Management;

namespace Serve.Standalone.Tests;

/// <summary>
/// TorchServe model archives through the management API and at start-up: settings precedence, unpacked
/// directories, and bad archives refused with a 4xx that leaves nothing registered or unpacked.
/// </summary>
public sealed class ArchiveRegistrationTests(ArchiveRegistrationTests.Factory serve) : IClassFixture<ArchiveRegistrationTests.Factory>
{
    public sealed class Factory : ServeFactory
    {
        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            new("Serve:LoadModels", "linrelu=linrelu.pt,startup.mar"),
            new("Serve:EnableModelApi", "true"),
        ];

        protected override void PrepareModelStore(string store)
        {
            WriteArchive(store, "startup.mar", "from-startup", "tensor", "batchSize: 3\nminWorkers: 1\n");
            WriteArchive(store, "echo.mar", "echo", "tensor", "batchSize: 4\nmaxBatchDelay: 7\nminWorkers: 1\nresponseTimeout: 33\n",
                labels: """{"0": "zero"}""");
            WriteArchive(store, "python.mar", "python", "my_handler.py:handle", null);
            WriteArchive(store, "impatient.mar", "impatient", "tensor", "minWorkers: 1\nstartupTimeout: 0\n");
            WriteArchive(store, "unknown.mar", "unknown", "no_such_handler", null);
            TorchScriptWriter.EmbeddingClassifier(Path.Combine(store, "bow.pt"), new float[,] { { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 3 } });
            WriteArchive(store, "sentiment.mar", "sentiment", "text_classifier", null, labels: """{"0": "negative", "1": "positive"}""",
                model: "bow.pt", vocab: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "great"]);
            TorchScriptWriter.AbortsOnLoad(Path.Combine(store, "aborts.pt"));
            WriteArchive(store, "aborts.mar", "aborts", "tensor", null, model: "aborts.pt");

            var unpacked = Path.Combine(store, "unpacked-echo");
            Directory.CreateDirectory(unpacked);
            ZipFile.ExtractToDirectory(Path.Combine(store, "echo.mar"), unpacked);

            using (var zip = ZipFile.Open(Path.Combine(store, "slip.mar"), ZipArchiveMode.Create))
            {
                using (var writer = new StreamWriter(zip.CreateEntry("MAR-INF/MANIFEST.json").Open()))
                {
                    writer.Write("""{"model": {"modelName": "slip", "serializedFile": "identity.pt", "handler": "tensor"}}""");
                }

                using (var model = zip.CreateEntry("identity.pt").Open())
                {
                    model.Write(File.ReadAllBytes(Path.Combine(store, "identity.pt")));
                }

                using var evil = new StreamWriter(zip.CreateEntry("../../slipped.txt").Open());
                evil.Write("outside");
            }

            var whole = File.ReadAllBytes(Path.Combine(store, "echo.mar"));
            File.WriteAllBytes(Path.Combine(store, "truncated.mar"), whole[..(whole.Length * 2 / 3)]);

            var eager = Path.Combine(store, "eager-src");
            Directory.CreateDirectory(Path.Combine(eager, "MAR-INF"));
            File.WriteAllText(Path.Combine(eager, "MAR-INF", "MANIFEST.json"),
                """{"model": {"modelName": "eager", "serializedFile": "weights.pth", "modelFile": "model.py", "handler": "image_classifier"}}""");
            File.WriteAllText(Path.Combine(eager, "weights.pth"), "state dict");
            File.WriteAllText(Path.Combine(eager, "model.py"), "import os; os.system('echo owned')");
            ZipFile.CreateFromDirectory(eager, Path.Combine(store, "eager.mar"));
            Directory.Delete(eager, recursive: true);
        }

        /// <summary>An archive of a model in the store, as serve-archiver makes it (signed by <paramref name="signer"/>, if given).</summary>
        internal static void WriteArchive(
            string store, string file, string name, string handler, string? config, string? labels = null, string model = "identity.pt",
            string[]? vocab = null, SigningKey? signer = null)
        {
            var work = Directory.CreateTempSubdirectory("serve-archive-src-").FullName;
            try
            {
                var modelFile = Path.Combine(work, model);
                File.Copy(Path.Combine(store, model), modelFile);
                string? configFile = null;
                if (config is not null)
                {
                    configFile = Path.Combine(work, "model-config.yaml");
                    File.WriteAllText(configFile, config);
                }

                List<string> extra = [];
                if (labels is not null)
                {
                    extra.Add(Path.Combine(work, "index_to_name.json"));
                    File.WriteAllText(extra[0], labels);
                }

                if (vocab is not null)
                {
                    extra.Add(Path.Combine(work, "vocab.txt"));
                    File.WriteAllLines(extra[^1], vocab);
                }

                ArchiveWriter.Write(Path.Combine(store, file), new ArchiveContents(name, "1.0", modelFile, handler, configFile, extra), signer: signer);
            }
            finally
            {
                Directory.Delete(work, recursive: true);
            }
        }
    }

    /// <summary>The archives unpacked into a model store, by directory name.</summary>
    internal static string[] Unpacked(string modelStore)
    {
        var directory = Path.Combine(modelStore, ModelFiles.ArchiveDirectory);
        return Directory.Exists(directory) ? [.. Directory.GetDirectories(directory).Select(Path.GetFileName).Order()!] : [];
    }

    private string[] Unpacked() => Unpacked(serve.ModelStore);

    [Fact]
    public async Task The_archives_startup_timeout_bounds_a_synchronous_registration_below_the_parameter()
    {
        using var management = serve.Management();
        using var refused = await management.PostAsync("/models?url=impatient.mar", null, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.InternalServerError, refused.StatusCode);
        Assert.Equal("Failed to start workers for model impatient version: 1.0",
            (await Json.ReadAsync(refused)).GetProperty("message").GetString());

        using var given = await management.PostAsync("/models?url=impatient.mar&startup_timeout=60", null, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, given.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await management.DeleteAsync("/models/impatient", TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task An_archive_registers_with_its_settings_under_the_api_parameters_and_serves()
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=echo.mar");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        Assert.Equal("Model \"echo\" Version: 1.0 registered with 1 initial workers", Json.Message(body));

        var described = (await serve.ManageAsync(HttpMethod.Get, "/models/echo")).Body[0];
        Assert.Equal("echo.mar", described.GetProperty("modelUrl").GetString());
        Assert.Equal((4, 7, 33), (described.GetProperty("batchSize").GetInt32(), described.GetProperty("maxBatchDelay").GetInt32(),
            described.GetProperty("responseTimeout").GetInt32()));

        using var inference = serve.Inference();
        using var response = await inference.PostAsync("/predictions/echo",
            new StringContent("[[3.0]]", Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal("[[3]]", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));

        // API parameters override the archive's model-config.yaml, which overrides Serve's defaults.
        (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=echo.mar&model_name=echo2&batch_size=2&initial_workers=0");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        described = (await serve.ManageAsync(HttpMethod.Get, "/models/echo2")).Body[0];
        Assert.Equal((2, 7), (described.GetProperty("batchSize").GetInt32(), described.GetProperty("maxBatchDelay").GetInt32()));
        Assert.Single(Unpacked(), d => d.StartsWith("echo-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_text_classifier_archive_tokenises_with_its_vocab_txt_and_names_classes_with_its_labels()
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=sentiment.mar&initial_workers=1");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));

        // "Great" -> [CLS] great [SEP] (lower-cased): the logits are the mean of the tokens' rows, (0, 1).
        using var inference = serve.Inference();
        using var response = await inference.PostAsync("/predictions/sentiment",
            new StringContent("Great", Encoding.UTF8, "text/plain"), TestContext.Current.CancellationToken);
        var answer = await Json.ReadAsync(response);
        Assert.True(response.IsSuccessStatusCode, answer.ToString());
        Assert.Equal(["negative", "positive"], answer.EnumerateObject().Select(p => p.Name));
        Assert.Equal(1 / (1 + Math.Exp(1)), answer.GetProperty("negative").GetDouble(), 1e-5);
        Assert.Equal(1 / (1 + Math.Exp(-1)), answer.GetProperty("positive").GetDouble(), 1e-5);
    }

    [Fact]
    public async Task A_start_up_archive_serves_with_its_settings()
    {
        await serve.WaitReadyAsync("from-startup");
        var described = (await serve.ManageAsync(HttpMethod.Get, "/models/from-startup")).Body[0];
        Assert.Equal(3, described.GetProperty("batchSize").GetInt32());
        Assert.Equal("startup.mar", described.GetProperty("modelUrl").GetString());
    }

    [Fact]
    public async Task An_unpacked_archive_directory_registers()
    {
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, "/models?url=unpacked-echo&model_name=fromdir&initial_workers=1");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
        Assert.Equal(4, (await serve.ManageAsync(HttpMethod.Get, "/models/fromdir")).Body[0].GetProperty("batchSize").GetInt32());
    }

    [Fact]
    public async Task A_sha256_pin_checks_a_bare_torchscript_file_too()
    {
        var actual = ArchivePin.Sha256(Path.Combine(serve.ModelStore, "identity.pt"));
        var wrong = new string('f', 64);
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, $"/models?url=identity.pt&model_name=pinned-bare&sha256={wrong}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains($"its SHA-256 is {actual}, the sha256 given is {wrong}", Json.Message(body), StringComparison.Ordinal);

        (status, body) = await serve.ManageAsync(HttpMethod.Post, $"/models?url=identity.pt&model_name=pinned-bare&initial_workers=0&sha256={actual}");
        Assert.True(status == HttpStatusCode.OK, Json.Message(body));
    }

    [Theory]
    [InlineData("python.mar", "python", "handler 'my_handler.py:handle' is Python code; Serve never runs code from a model archive")]
    [InlineData("unknown.mar", "unknown", "handler 'no_such_handler' is not a built-in handler")]
    [InlineData("eager.mar", "eager", "eager PyTorch model (model.py)")]
    [InlineData("slip.mar", "slip", "the archive entry '../../slipped.txt' would be written outside the model's directory")]
    [InlineData("truncated.mar", "truncated", "the archive is not a valid zip file")]
    [InlineData("aborts.mar", "aborts", "aborts.pt is refused: libtorch aborted (SIGABRT) while a preflight process loaded it")]
    public async Task Bad_archives_get_a_400_and_leave_nothing_behind(string file, string name, string message)
    {
        // The start-up archive is unpacked while the server starts; count it in before comparing.
        await serve.WaitReadyAsync("from-startup");
        var before = Unpacked();
        var (status, body) = await serve.ManageAsync(HttpMethod.Post, $"/models?url={file}&initial_workers=1");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, Json.Message(body));
        if (file is "python.mar" or "unknown.mar")
        {
            Assert.EndsWith("supported built-in handlers: tensor, image_classifier, text_classifier, object_detector, image_segmenter",
                Json.Message(body), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await serve.ManageAsync(HttpMethod.Get, $"/models/{name}")).Status);
        Assert.Equal(before, Unpacked());
        Assert.False(File.Exists(Path.Combine(serve.ModelStore, "slipped.txt")));
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(serve.ModelStore)!, "slipped.txt")));
    }
}
