using System.IO.Compression;
using Serve.Archive;

namespace Serve.Archive.Tests;

/// <summary>Reading and writing TorchServe's archive layout, and refusing archives that could hurt the host.</summary>
public sealed class ArchiveTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("serve-archive-tests-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    private string PathOf(string name) => Path.Combine(_work, name);

    /// <summary>A zip with exactly these entries (name, content; a name ending in '/' is a directory).</summary>
    private string Zip(string name, params (string Entry, string Content)[] entries)
    {
        var path = PathOf(name);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (entry, content) in entries)
        {
            var created = zip.CreateEntry(entry);
            if (!entry.EndsWith('/'))
            {
                using var writer = new StreamWriter(created.Open());
                writer.Write(content);
            }
        }

        return path;
    }

    private const string Manifest = """
        {"createdOn": "25/11/2026 10:00:00", "runtime": "python",
         "model": {"modelName": "tiny", "serializedFile": "tiny.pt", "handler": "tensor", "modelVersion": "2.0", "configFile": "model-config.yaml"},
         "archiverVersion": "0.12.0"}
        """;

    [Fact]
    public void A_torchserve_archive_unpacks_and_opens_with_its_settings()
    {
        var archive = Zip("tiny.mar",
            ("MAR-INF/MANIFEST.json", Manifest),
            ("tiny.pt", "not really torchscript, archives do not load models"),
            ("model-config.yaml", "minWorkers: 2\nmaxWorkers: 4\nbatchSize: 8\nmaxBatchDelay: 5\nresponseTimeout: 30\njobQueueSize: 50\n" +
                                  "deviceType: gpu\ndeviceIds: [0, 1]\ndeviceMemoryMb: 1500\nhandler:\n  threshold: 0.5\n"),
            ("index_to_name.json", """{"0": "cat"}"""));
        var target = PathOf("unpacked");
        SafeZip.Extract(archive, target, ArchiveLimits.Default);

        var opened = ModelArchive.Open(target);
        Assert.Equal(("tiny", "2.0", "tensor"), (opened.Manifest.Model.ModelName, opened.Manifest.Model.ModelVersion, opened.Manifest.Model.Handler));
        Assert.Equal("tiny.pt", opened.SerializedFile);
        Assert.Equal("index_to_name.json", opened.LabelsFile);
        var s = opened.Settings;
        Assert.Equal((2, 4, 8, 5, 30, 50), (s.MinWorkers, s.MaxWorkers, s.BatchSize, s.MaxBatchDelay, s.ResponseTimeout, s.JobQueueSize));
        Assert.Equal("gpu", s.DeviceType);
        Assert.Equal([0, 1], s.DeviceIds!);
        Assert.Equal(1500, s.DeviceMemoryMb);
    }

    [Theory]
    [InlineData("../evil.txt")]
    [InlineData("models/../../evil.txt")]
    [InlineData("/etc/evil.txt")]
    [InlineData("dir\\..\\..\\evil.txt")]
    public void Entries_that_would_escape_the_directory_are_refused(string entry)
    {
        var archive = Zip("slip.mar", ("MAR-INF/MANIFEST.json", Manifest), (entry, "owned"));
        var error = Assert.Throws<ArchiveException>(() => SafeZip.Extract(archive, PathOf("unpacked"), ArchiveLimits.Default));
        Assert.Contains("would be written outside the model's directory", error.Message);
        Assert.False(File.Exists(PathOf("evil.txt")));
        Assert.False(File.Exists("/etc/evil.txt"));
    }

    [Fact]
    public void Symbolic_links_are_refused()
    {
        var path = PathOf("link.mar");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            var link = zip.CreateEntry("tiny.pt");
            link.ExternalAttributes = unchecked((int)0xA1FF0000); // S_IFLNK | 0777
            using var writer = new StreamWriter(link.Open());
            writer.Write("/etc/passwd");
        }

        var error = Assert.Throws<ArchiveException>(() => SafeZip.Extract(path, PathOf("unpacked"), ArchiveLimits.Default));
        Assert.Contains("is a symbolic link", error.Message);
    }

    [Fact]
    public void A_truncated_zip_is_refused_clearly()
    {
        var archive = Zip("whole.mar", ("MAR-INF/MANIFEST.json", Manifest), ("tiny.pt", new string('x', 10_000)));
        var bytes = File.ReadAllBytes(archive);
        var truncated = PathOf("truncated.mar");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);

        var error = Assert.Throws<ArchiveException>(() => SafeZip.Extract(truncated, PathOf("unpacked"), ArchiveLimits.Default));
        Assert.Contains("not a valid zip file", error.Message);
    }

    [Fact]
    public void Archives_that_unpack_too_large_or_to_too_many_files_are_refused()
    {
        var big = Zip("big.mar", ("MAR-INF/MANIFEST.json", Manifest), ("tiny.pt", new string('0', 1_000_000)));
        var error = Assert.Throws<ArchiveException>(() => SafeZip.Extract(big, PathOf("a"), new ArchiveLimits(100, 100_000)));
        Assert.Contains("unpacks to more than 100000 bytes", error.Message);

        var many = Zip("many.mar", [.. Enumerable.Range(0, 20).Select(i => ($"f{i}", "x"))]);
        error = Assert.Throws<ArchiveException>(() => SafeZip.Extract(many, PathOf("b"), new ArchiveLimits(10, 100_000)));
        Assert.Contains("has 20 entries; at most 10", error.Message);
    }

    [Fact]
    public void Duplicate_entries_are_refused()
    {
        var archive = Zip("dup.mar", ("tiny.pt", "a"), ("tiny.pt", "b"));
        var error = Assert.Throws<ArchiveException>(() => SafeZip.Extract(archive, PathOf("unpacked"), ArchiveLimits.Default));
        Assert.Contains("more than once", error.Message);
    }

    [Theory]
    [InlineData("""{"model": {"modelName": "m", "serializedFile": "m.pth", "modelFile": "model.py", "handler": "image_classifier"}}""",
        "eager PyTorch model (model.py)")]
    [InlineData("""{"model": {"modelName": "m", "serializedFile": "m.onnx", "handler": "tensor"}}""", "is not TorchScript")]
    [InlineData("""{"model": {"modelName": "m", "handler": "tensor"}}""", "names no serializedFile")]
    [InlineData("""{"model": {"modelName": "m", "serializedFile": "../m.pt"}}""", "is outside the archive")]
    [InlineData("""{"model": {"modelName": "m", "serializedFile": "absent.pt"}}""", "is not a file in the archive")]
    [InlineData("""{"model": [1, 2]""", "MANIFEST.json is not valid")]
    public void Manifests_serve_cannot_honour_are_refused_with_the_reason(string manifest, string message)
    {
        var directory = PathOf("unpacked");
        Directory.CreateDirectory(Path.Combine(directory, "MAR-INF"));
        File.WriteAllText(Path.Combine(directory, "MAR-INF", "MANIFEST.json"), manifest);
        File.WriteAllText(Path.Combine(directory, "m.pth"), "weights");
        File.WriteAllText(Path.Combine(directory, "m.onnx"), "onnx");
        File.WriteAllText(Path.Combine(directory, "model.py"), "import os");

        var error = Assert.Throws<ArchiveException>(() => ModelArchive.Open(directory));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void A_directory_without_a_manifest_is_not_an_archive()
    {
        var error = Assert.Throws<ArchiveException>(() => ModelArchive.Open(_work));
        Assert.Contains("MAR-INF/MANIFEST.json is missing", error.Message);
    }

    [Theory]
    [InlineData("batchSize: eight", "batchSize must be an integer")]
    [InlineData("deviceType: tpu", "deviceType must be cpu or gpu")]
    [InlineData("deviceIds: 0", "deviceIds must be a list")]
    [InlineData("- a\n- b", "must be a mapping")]
    [InlineData("minWorkers: [", "is not valid YAML")]
    public void Bad_model_config_values_are_named(string yaml, string message)
    {
        var error = Assert.Throws<ArchiveException>(() => ArchiveSettings.Parse(yaml));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void The_writer_makes_an_archive_the_reader_opens_and_reports_progress()
    {
        File.WriteAllBytes(PathOf("model.pt"), new byte[3_000_000]);
        File.WriteAllText(PathOf("model-config.yaml"), "batchSize: 4\n");
        File.WriteAllText(PathOf("index_to_name.json"), """{"0": "zero"}""");
        var reports = new List<long>();
        var output = PathOf("out.mar");

        ArchiveWriter.Write(output, new ArchiveContents("m", "3.1", PathOf("model.pt"), "tensor", PathOf("model-config.yaml"),
            [PathOf("index_to_name.json")]), new SynchronousProgress(reports.Add));

        Assert.True(reports.Count >= 3, "progress is reported as the model file is written");
        Assert.Equal(3_000_000 + new FileInfo(PathOf("model-config.yaml")).Length + new FileInfo(PathOf("index_to_name.json")).Length, reports[^1]);
        SafeZip.Extract(output, PathOf("unpacked"), ArchiveLimits.Default);
        var opened = ModelArchive.Open(PathOf("unpacked"));
        Assert.Equal(("m", "3.1", "tensor", 4), (opened.Manifest.Model.ModelName, opened.Manifest.Model.ModelVersion, opened.Manifest.Model.Handler, opened.Settings.BatchSize));
        Assert.Equal("index_to_name.json", opened.LabelsFile);

        var again = Assert.Throws<ArchiveException>(() => ArchiveWriter.Write(output,
            new ArchiveContents("m", "3.1", PathOf("model.pt"), "tensor", null, [])));
        Assert.Contains("use --force", again.Message);
    }

    private sealed class SynchronousProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
