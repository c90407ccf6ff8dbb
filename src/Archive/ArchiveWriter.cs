using System.Globalization;
using System.IO.Compression;

namespace Serve.Archive;

/// <summary>What goes into a new archive: the TorchScript file, the handler, and optional config and extra files.</summary>
public sealed record ArchiveContents(
    string ModelName, string Version, string SerializedFile, string Handler, string? ConfigFile, IReadOnlyList<string> ExtraFiles);

/// <summary>
/// Writes TorchServe's .mar layout (a zip with the files flat at the root and MAR-INF/MANIFEST.json), so the
/// archive works with Serve and with TorchServe's own C++/TorchScript handler.
/// </summary>
public static class ArchiveWriter
{
    public const string Version = "serve-1";

    /// <summary>Writes <paramref name="output"/> (through a temporary file, so a failure leaves nothing), reporting bytes written.</summary>
    public static void Write(string output, ArchiveContents contents, IProgress<long>? progress = null, bool overwrite = false)
    {
        var files = new List<string> { contents.SerializedFile };
        files.AddRange(contents.ExtraFiles);
        if (contents.ConfigFile is not null)
        {
            files.Add(contents.ConfigFile);
        }

        foreach (var group in files.GroupBy(Path.GetFileName, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            throw new ArchiveException($"two files would be stored as '{group.Key}' in the archive: {string.Join(", ", group)}");
        }

        foreach (var file in files.Where(f => !File.Exists(f)))
        {
            throw new ArchiveException($"{file} does not exist");
        }

        if (contents.ConfigFile is not null)
        {
            ArchiveSettings.Parse(File.ReadAllText(contents.ConfigFile), Path.GetFileName(contents.ConfigFile));
        }

        if (File.Exists(output) && !overwrite)
        {
            throw new ArchiveException($"{output} exists; use --force to replace it");
        }

        var manifest = new ArchiveManifest
        {
            CreatedOn = DateTime.UtcNow.ToString("dd/MM/yyyy HH:mm:ss", CultureInfo.InvariantCulture),
            Runtime = "python",
            ArchiverVersion = Version,
            Model = new ManifestModel
            {
                ModelName = contents.ModelName,
                ModelVersion = contents.Version,
                SerializedFile = Path.GetFileName(contents.SerializedFile),
                Handler = contents.Handler,
                ConfigFile = contents.ConfigFile is null ? null : Path.GetFileName(contents.ConfigFile),
            },
        };

        var temporary = output + ".partial";
        try
        {
            long written = 0;
            using (var zip = ZipFile.Open(temporary, ZipArchiveMode.Create))
            {
                foreach (var file in files)
                {
                    var entry = zip.CreateEntry(Path.GetFileName(file), CompressionLevel.Fastest);
                    using var source = File.OpenRead(file);
                    using var destination = entry.Open();
                    var buffer = new byte[1 << 20];
                    int read;
                    while ((read = source.Read(buffer)) > 0)
                    {
                        destination.Write(buffer, 0, read);
                        written += read;
                        progress?.Report(written);
                    }
                }

                var manifestEntry = zip.CreateEntry(ArchiveManifest.RelativePath, CompressionLevel.Fastest);
                using var writer = new StreamWriter(manifestEntry.Open());
                writer.Write(manifest.ToJson());
            }

            File.Move(temporary, output, overwrite);
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}
