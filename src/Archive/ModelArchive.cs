namespace Serve.Archive;

/// <summary>
/// An unpacked model archive (a .mar after extraction, or a directory in TorchServe's no-archive layout):
/// its manifest, its serving settings and the files Serve uses, as paths relative to <see cref="Directory"/>.
/// </summary>
public sealed record ModelArchive(
    string Directory, ArchiveManifest Manifest, ArchiveSettings Settings, string SerializedFile, string? LabelsFile)
{
    public const string LabelsFileName = "index_to_name.json";
    public const string VocabFileName = "vocab.txt";

    /// <summary>The WordPiece vocabulary (<see cref="VocabFileName"/>) when the archive has one, for text_classifier.</summary>
    public string? VocabFile { get; init; }

    /// <summary>Model files Serve loads: TorchScript, written by torch.jit.save.</summary>
    public static readonly string[] ModelFileExtensions = [".pt", ".pth", ".ts"];

    /// <summary>Reads and checks an unpacked archive. Nothing in it is executed, now or later.</summary>
    public static ModelArchive Open(string directory)
    {
        var manifestPath = Path.Combine(directory, ArchiveManifest.RelativePath);
        if (!File.Exists(manifestPath))
        {
            throw new ArchiveException($"not a model archive: {ArchiveManifest.RelativePath} is missing");
        }

        var manifest = ArchiveManifest.Parse(File.ReadAllText(manifestPath));
        var model = manifest.Model;
        if (!string.IsNullOrEmpty(model.ModelFile))
        {
            throw new ArchiveException(
                $"the archive's model is an eager PyTorch model ({model.ModelFile}), which needs Python to build; Serve never runs code " +
                "from an archive. Export the model with torch.jit.script or torch.jit.trace and archive the TorchScript file");
        }

        if (string.IsNullOrEmpty(model.SerializedFile))
        {
            throw new ArchiveException("the archive's manifest names no serializedFile (the TorchScript model file)");
        }

        var serialized = InDirectory(directory, model.SerializedFile, "serializedFile");
        if (!ModelFileExtensions.Contains(Path.GetExtension(serialized), StringComparer.OrdinalIgnoreCase))
        {
            throw new ArchiveException(
                $"the archive's model file {model.SerializedFile} is not TorchScript; Serve loads {string.Join(", ", ModelFileExtensions)} files " +
                "written by torch.jit.save (ONNX, AOTInductor and TensorRT files are not supported)");
        }

        var settings = ArchiveSettings.None;
        if (!string.IsNullOrEmpty(model.ConfigFile))
        {
            var config = InDirectory(directory, model.ConfigFile, "configFile");
            settings = ArchiveSettings.Parse(File.ReadAllText(Path.Combine(directory, config)), model.ConfigFile);
        }

        var labels = File.Exists(Path.Combine(directory, LabelsFileName)) ? LabelsFileName : null;
        var vocab = File.Exists(Path.Combine(directory, VocabFileName)) ? VocabFileName : null;
        return new ModelArchive(directory, manifest, settings, serialized, labels) { VocabFile = vocab };
    }

    /// <summary>A file the manifest names: relative, inside the archive, a regular file.</summary>
    private static string InDirectory(string directory, string name, string field)
    {
        var root = Path.GetFullPath(directory);
        var full = Path.GetFullPath(Path.Combine(root, name));
        if (Path.IsPathRooted(name) || !full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ArchiveException($"the manifest's {field} '{name}' is outside the archive");
        }

        var info = new FileInfo(full);
        if (!info.Exists || info.LinkTarget is not null)
        {
            throw new ArchiveException($"the manifest's {field} '{name}' is not a file in the archive");
        }

        return Path.GetRelativePath(root, full);
    }
}
